"""The torch backend: an open_clip model behind the `Encoder` protocol.

Device "auto" picks CUDA when present; on a GPU the towers run under bf16 autocast (fp16 where bf16 is
unsupported), on the CPU in fp32; always in `torch.inference_mode()`.
"""

from __future__ import annotations

import numpy as np
import torch

from gcl_vectordb.encoders.models import LoadedClip, create_clip_model, encode_text_fast, weights_sha256
from gcl_vectordb.encoders.protocol import BatchedEncoder, EncoderInfo
from gcl_vectordb.encoders.tokenizer import ClipTokenizer, open_clip_vocab_path
from gcl_vectordb.errors import ModelError


def pick_device(device: str = "auto") -> torch.device:
    """"auto" → cuda if available else cpu ("auto:N": cuda:N if available, for a torchrun rank); anything
    else is passed to torch.device (validated)."""
    if device.split(":")[0] == "auto":
        index = device.partition(":")[2]
        return torch.device(f"cuda:{index}" if index else "cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}", "use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but no CUDA device is available", "use --device cpu")
    return resolved


class TorchEncoder(BatchedEncoder):
    """Embeds with an open_clip model in torch. Example: `TorchEncoder.from_ref("gcl-tiny").encode_texts(["red dress"])`."""

    def __init__(self, loaded: LoadedClip, *, device: str = "auto", batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ModelError(f"batch size must be ≥ 1, got {batch_size}")
        self.loaded = loaded
        self.device = pick_device(device)
        self.model = loaded.model.to(self.device).eval()
        self.model_ref = loaded.source.ref
        self.dim = loaded.embed_dim
        self.image_size = loaded.image_size
        self.preprocessor = loaded.preprocessor()
        self.batch_size = batch_size
        self._tokenizer = ClipTokenizer(open_clip_vocab_path(), loaded.context_length)
        self._autocast_dtype = None
        if self.device.type == "cuda":
            self._autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    @classmethod
    def from_ref(cls, model_ref: str, *, device: str = "auto", batch_size: int = 64) -> TorchEncoder:
        return cls(create_clip_model(model_ref), device=device, batch_size=batch_size)

    def _run(self, fn, array: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=self._autocast_dtype or torch.float32, enabled=self._autocast_dtype is not None
        ):
            out = fn(torch.from_numpy(array).to(self.device), normalize=True)
        return out.float().cpu().numpy()

    def _weights_sha256(self) -> str:
        return weights_sha256(self.model)

    def _run_text(self, tokens: np.ndarray) -> np.ndarray:
        return self._run(lambda t, normalize: encode_text_fast(self.model, t), tokens)

    def _run_image(self, pixels: np.ndarray) -> np.ndarray:
        return self._run(self.model.encode_image, pixels)

    def describe(self) -> EncoderInfo:
        variant = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self._autocast_dtype]
        return EncoderInfo(
            backend="torch", provider=str(self.device), variant=variant, threads=torch.get_num_threads(),
            batch_size=self.batch_size, model_ref=self.model_ref, dim=self.dim, image_size=self.image_size,
        )
