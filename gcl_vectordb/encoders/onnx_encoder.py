"""The ONNX Runtime backend: an exported bundle behind the `Encoder` protocol, without torch.

Everything comes from the bundle's manifest: the towers, the tokenizer vocabulary, the preprocessing.
Providers are tried in the order TensorRT → CUDA → CPU (those this onnxruntime build offers); the
provider a session really runs on is read back from the session and reported by `describe()`.
This module must stay free of torch and open_clip imports: `gcl-vdb query` starts from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gcl_vectordb.encoders.manifest import (
    IMAGE_INPUT,
    IMAGE_OUTPUT,
    TEXT_INPUT,
    TEXT_OUTPUT,
    ExportManifest,
    verify_bundle,
)
from gcl_vectordb.encoders.protocol import BatchedEncoder, EncoderInfo
from gcl_vectordb.encoders.tokenizer import TOKENIZER_NAME, ClipTokenizer
from gcl_vectordb.errors import ModelError
from gcl_vectordb.files import available_cpus

log = logging.getLogger(__name__)
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = PROVIDER_ORDER[:2]


def select_providers(device: str = "auto") -> list[str]:
    """Execution providers to ask for, best first: "auto[:N]" (all offered; GPU N where one is used), "cpu",
    "cuda[:N]" or "tensorrt"."""
    offered = set(ort.get_available_providers())
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.split(":")[0] == "auto":
        return [p for p in PROVIDER_ORDER if p in offered]
    wanted = {"tensorrt": list(PROVIDER_ORDER), "cuda": list(PROVIDER_ORDER[1:])}.get(device.split(":")[0])
    if wanted is None:
        raise ModelError(f"unknown device {device!r}", "use auto, cpu, cuda or tensorrt")
    if wanted[0] not in offered:
        raise ModelError(f"device {device!r} asked for but onnxruntime offers only {sorted(offered)}",
                         "install onnxruntime-gpu on a CUDA machine, or use --device cpu")
    return wanted


def _session(path: Path, providers: list[str], threads: int, device: str, variant: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # fp16 graphs crash onnxruntime 1.32's CPU layout optimiser (level ALL: segfault on session creation);
    # EXTENDED keeps every fusion except the CPU-only NCHWc layout rewrite.
    level = "ORT_ENABLE_EXTENDED" if variant == "fp16" else "ORT_ENABLE_ALL"
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle ORT threads otherwise busy-wait and slow down everything else on the machine (decoding workers,
    # torch): measured 2x slower torch next to an idle spinning session on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    device_id = int(device.split(":")[1]) if device.startswith(("cuda:", "auto:")) else 0
    provider_args = [({"device_id": device_id} if p in _GPU_PROVIDERS else {}) for p in providers]
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers,
                                    provider_options=provider_args)
    except Exception as exc:  # onnxruntime raises its own pybind exception types for bad models
        raise ModelError(f"onnxruntime cannot load {path}: {str(exc)[:300]}",
                         "the bundle is damaged or was made by an incompatible exporter; re-export it") from exc


def _check_tower(session: ort.InferenceSession, name: str, in_name: str, in_shape: tuple, out_name: str,
                 dim: int) -> None:
    """The ONNX graph must have the input/output names and static sizes the manifest promises."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [in_name] or out_name not in [o.name for o in outputs]:
        raise ModelError(f"{name}: expected input {in_name!r} and output {out_name!r}, found inputs "
                         f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}",
                         "the file belongs to another bundle or exporter; re-export the bundle")
    got_in = tuple(inputs[0].shape[1:])
    got_dim = next(o.shape for o in outputs if o.name == out_name)[-1]
    # Symbolic (string) sizes cannot be checked here; a fixed size that differs is a mismatch.
    if len(got_in) != len(in_shape) or any(isinstance(g, int) and g != e for g, e in zip(got_in, in_shape, strict=True)):
        raise ModelError(f"{name} takes inputs of shape (batch, {', '.join(map(str, got_in))}) but the manifest "
                         f"says (batch, {', '.join(map(str, in_shape))})", "the bundle is mismatched; re-export it")
    if isinstance(got_dim, int) and got_dim != dim:
        raise ModelError(f"{name} outputs {got_dim}-d embeddings but the manifest says {dim}",
                         "the bundle mixes files of different models; re-export it")


class OnnxEncoder(BatchedEncoder):
    """Embeds with an exported bundle. Example: `OnnxEncoder("gcl-vdb-work/model").encode_texts(["red dress"])`.

    `towers=("text",)` loads (and verifies) the text tower only: what a query needs, in about half the
    time for a ViT-B-32 bundle; image calls then raise ModelError.
    """

    def __init__(self, bundle: str | Path, *, variant: str = "fp32", device: str = "auto",
                 threads: int | None = None, batch_size: int = 64, verify: bool = True,
                 towers: tuple[str, ...] = ("text", "image")) -> None:
        if batch_size < 1:
            raise ModelError(f"batch size must be ≥ 1, got {batch_size}")
        if "text" not in towers or not set(towers) <= {"text", "image"}:
            raise ModelError(f"towers must be ('text',) or ('text', 'image'), got {towers}")
        folder = Path(bundle).expanduser().resolve()
        manifest = ExportManifest.read(folder)
        files = verify_bundle(folder, manifest, variant, towers) if verify else manifest.variants[variant]
        if manifest.tokenizer.name != TOKENIZER_NAME:
            raise ModelError(f"bundle tokenizer {manifest.tokenizer.name!r} is not supported (only {TOKENIZER_NAME!r})")
        self.manifest, self.folder, self.variant = manifest, folder, variant
        self.model_ref = str(folder)
        self.dim, self.image_size, self.batch_size = manifest.embed_dim, manifest.image_size, batch_size
        self.threads = threads or available_cpus()
        self.preprocessor = manifest.preprocessor()
        self._tokenizer = ClipTokenizer(folder / manifest.tokenizer.vocab_file, manifest.context_length)
        providers = select_providers(device)
        self._text = _session(folder / files.text, providers, self.threads, device, variant)
        _check_tower(self._text, files.text, TEXT_INPUT, (manifest.context_length,), TEXT_OUTPUT, self.dim)
        self._image = None
        if "image" in towers:
            self._image = _session(folder / files.image, providers, self.threads, device, variant)
            _check_tower(self._image, files.image, IMAGE_INPUT, (3, self.image_size, self.image_size),
                         IMAGE_OUTPUT, self.dim)
        self.provider = self._text.get_providers()[0]
        log.info("ONNX bundle %s (%s) on %s, %d threads", folder, variant, self.provider, self.threads)

    def _weights_sha256(self) -> str:
        return self.manifest.source.weights_sha256  # of the torch weights the bundle was exported from

    def _run_text(self, tokens: np.ndarray) -> np.ndarray:
        if self.manifest.dynamic_text_length:  # cut after the rows' last end-of-text token (the largest id)
            tokens = np.ascontiguousarray(tokens[:, : int(tokens.argmax(axis=1).max()) + 1])
        return self._text.run([TEXT_OUTPUT], {TEXT_INPUT: tokens})[0]

    def _run_image(self, pixels: np.ndarray) -> np.ndarray:
        if self._image is None:
            raise ModelError(f"the encoder of {self.folder} was loaded for texts only",
                             "load it with towers=('text', 'image') to embed images")
        return self._image.run([IMAGE_OUTPUT], {IMAGE_INPUT: pixels})[0]

    def describe(self) -> EncoderInfo:
        return EncoderInfo(
            backend="onnx", provider=self.provider, variant=self.variant, threads=self.threads,
            batch_size=self.batch_size, model_ref=self.model_ref, dim=self.dim, image_size=self.image_size,
        )
