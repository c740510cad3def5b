"""Smaller or faster copies of an exported fp32 tower.

int8: dynamic quantisation (weights int8 per channel, activations quantised on the fly) — for CPUs.
fp16: weights and activations in half precision, inputs/outputs kept float32 — for GPUs.
Both are checked against torch after they are made; their parity figures go into the manifest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

from gcl_vectordb.encoders.models import quiet_root_warnings
from gcl_vectordb.errors import ExportError


def make_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of MatMul/Gemm/Conv weights (onnxruntime.quantization)."""
    try:
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp, quiet_root_warnings("pre-processing"):
            # Shape inference + graph optimisation first, as onnxruntime recommends before quantising.
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(prepared, dst, per_channel=True, weight_type=QuantType.QInt8)
    except Exception as exc:  # the quantiser raises assorted exception types on unsupported graphs
        raise ExportError(f"int8 quantisation of {src.name} failed: {type(exc).__name__}: {str(exc)[:300]}",
                          "export without --int8") from exc


def make_fp16(src: Path, dst: Path) -> None:
    """Convert a float32 graph to float16, keeping float32 inputs and outputs."""
    try:
        converted = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(converted, str(dst))
    except Exception as exc:  # conversion raises assorted exception types on unsupported graphs
        raise ExportError(f"fp16 conversion of {src.name} failed: {type(exc).__name__}: {str(exc)[:300]}",
                          "export without --fp16") from exc


MAKERS = {"int8": make_int8, "fp16": make_fp16}
