"""The `Encoder` protocol every backend implements, and the batching both backends share.

An encoder maps texts and images to L2-normalised float32 vectors of one dimension `dim`, in the joint
CLIP space. `model_ref` is the string a collection records, so that a query is always embedded by the
model that embedded the corpus.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from gcl_vectordb.domain import ModelIdentity, Preprocessing
from gcl_vectordb.encoders.preprocess import ImagePreprocessor
from gcl_vectordb.encoders.tokenizer import ClipTokenizer
from gcl_vectordb.errors import ModelError


@dataclass(frozen=True)
class EncoderInfo:
    """What runs an encoder: backend ("torch" | "onnx"), the provider/device actually used, and its settings."""

    backend: str
    provider: str  # e.g. "CPUExecutionProvider", "CUDAExecutionProvider", "cpu", "cuda:0"
    variant: str  # "fp32" | "int8" | "fp16"; for torch the autocast dtype ("fp32", "bf16", "fp16")
    threads: int
    batch_size: int
    model_ref: str
    dim: int
    image_size: int


@runtime_checkable
class Encoder(Protocol):
    """Texts and images → `(n, dim)` float32, rows L2-normalised; empty input → `(0, dim)`."""

    model_ref: str
    dim: int
    image_size: int
    preprocessor: ImagePreprocessor

    @property
    def identity(self) -> ModelIdentity:
        """Which model this is (weights hash, dim, preprocessing): what a collection records."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...

    def describe(self) -> EncoderInfo: ...


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm (a zero row stays zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


class BatchedEncoder:
    """Shared front half of both backends: tokenise, preprocess, split into batches, normalise.

    Subclasses set `model_ref`, `dim`, `image_size`, `preprocessor`, `batch_size`, `_tokenizer` and
    implement `_run_text(tokens (b, context) int64) -> (b, dim)` and `_run_image(pixels (b,3,S,S)) -> (b, dim)`.
    """

    model_ref: str
    dim: int
    image_size: int
    preprocessor: ImagePreprocessor
    batch_size: int
    _tokenizer: ClipTokenizer

    def _weights_sha256(self) -> str:
        raise NotImplementedError

    @functools.cached_property
    def identity(self) -> ModelIdentity:
        """The model's identity; computed once (hashing a torch model's weights takes ~1 s at ViT-B-32)."""
        p = self.preprocessor
        preprocessing = Preprocessing(
            image_size=p.size, mean=tuple(map(float, p.mean)), std=tuple(map(float, p.std)),
            interpolation=p.interpolation, resize_mode=p.resize_mode, fill_color=int(p.fill_color),
            context_length=self._tokenizer.context_length,
        )
        return ModelIdentity(self.model_ref, self._weights_sha256(), self.dim, preprocessing)

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → `(n, context_length)` int64 token ids, exactly as the text tower receives them."""
        return self._tokenizer(texts)

    def _run_text(self, tokens: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _run_image(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """`n` texts → `(n, dim)` float32, L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        chunks = [
            self._run_text(self.tokenize(list(texts[i : i + self.batch_size])))
            for i in range(0, len(texts), self.batch_size)
        ]
        return self._stack(chunks)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """`n` PIL images → `(n, dim)` float32, L2-normalised (preprocessed batch by batch)."""
        chunks = [
            self._run_image(self.preprocessor.batch(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return self._stack(chunks)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Already preprocessed `(n, 3, S, S)` float32 → `(n, dim)` float32, L2-normalised."""
        pixels = np.asarray(pixels, dtype=np.float32)
        expected = (3, self.image_size, self.image_size)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ModelError(f"pixels must have shape (n, {', '.join(map(str, expected))}), got {pixels.shape}",
                             "preprocess images with this encoder's `preprocessor`")
        chunks = [
            self._run_image(np.ascontiguousarray(pixels[i : i + self.batch_size]))
            for i in range(0, len(pixels), self.batch_size)
        ]
        return self._stack(chunks)

    def _stack(self, chunks: list[np.ndarray]) -> np.ndarray:
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        # The towers already normalise; renormalising in float32 removes fp16/int8 drift in the norm.
        return l2_normalize(np.concatenate(chunks, axis=0))
