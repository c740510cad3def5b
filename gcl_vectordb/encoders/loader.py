"""`load_encoder`: one model reference → the right backend.

A bundle folder runs on ONNX Runtime; every other reference (architecture, weights file, checkpoint or
run folder, pretrained tag, hf-hub id) runs on torch. Each backend is imported only when a model asks for
it (cold start: a query loads ONNX Runtime, never torch), after checking that its install extra is there.
"""

from __future__ import annotations

from typing import Literal

from gcl_vectordb.encoders.manifest import VARIANTS
from gcl_vectordb.encoders.protocol import Encoder
from gcl_vectordb.encoders.refs import resolve_model_ref
from gcl_vectordb.errors import ModelError
from gcl_vectordb.extras import require_onnxruntime, require_torch

Backend = Literal["auto", "torch", "onnx"]
Variant = Literal["fp32", "int8", "fp16"]


def load_encoder(
    model_ref: str,
    *,
    backend: Backend = "auto",
    device: str = "auto",
    batch_size: int = 64,
    variant: Variant = "fp32",
    towers: tuple[str, ...] = ("text", "image"),
) -> Encoder:
    """The encoder a model reference names. `variant` picks the ONNX files of a bundle (fp32 | int8 | fp16);
    `towers=("text",)` loads only the text tower of a bundle (queries; a torch model loads whole).

    Example: `load_encoder("gcl-vdb-work/model").encode_texts(["red summer dress"])` → (1, dim) float32.
    """
    if backend not in ("auto", "torch", "onnx"):
        raise ModelError(f"unknown backend {backend!r}", "use auto, torch or onnx")
    if variant not in VARIANTS:
        raise ModelError(f"unknown variant {variant!r}", f"use one of {', '.join(VARIANTS)}")
    source = resolve_model_ref(model_ref)
    if source.kind == "bundle":
        if backend == "torch":
            raise ModelError(f"{source.ref} is an ONNX bundle; it cannot run on the torch backend",
                             "use backend auto/onnx, or pass the checkpoint it was exported from")
        require_onnxruntime(f"the ONNX bundle {source.ref}")
        from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder  # ONNX Runtime: imported for a bundle only

        return OnnxEncoder(source.path, variant=variant, device=device, batch_size=batch_size, towers=towers)
    if backend == "onnx":
        raise ModelError(f"{source.ref} is not an ONNX bundle",
                         f"export it first: gcl-vdb export --model {source.ref} --out MODEL_DIR")
    if variant != "fp32":
        raise ModelError(f"variant {variant!r} applies to ONNX bundles only",
                         "export a bundle with that variant, or use fp32 with the torch backend")
    require_torch(f"the model {source.ref}")
    from gcl_vectordb.encoders.torch_encoder import TorchEncoder  # torch: imported for a torch model only

    return TorchEncoder.from_ref(source.ref, device=device, batch_size=batch_size)
