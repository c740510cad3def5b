"""Image preprocessing identical to open_clip's eval transform, in PIL + numpy (no torch, picklable).

open_clip (eval): resize (shortest edge to S, bicubic; or `longest` / `squash`), centre crop (or pad) to
S × S, convert to RGB, scale to [0, 1], then (x − mean) / std per channel. The same steps here, in the
same order, so the tensors match open_clip's to float rounding (a test checks this). `from_bytes` adds
JPEG draft mode: the decoder itself downscales by 1/2, 1/4 or 1/8 while staying at least
`draft_factor × S` on both sides, which cuts decode time several-fold on large product photos at a
small, measured cost in fidelity (see tests/test_encoders_preprocess.py).

The object is a frozen dataclass, so ingest worker processes can receive it and ship only arrays back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from gcl_vectordb.errors import DataError, ModelError
from gcl_vectordb.imaging import open_image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("shortest", "longest", "squash")
INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class ImagePreprocessor:
    """PIL image or encoded bytes → `(3, size, size)` float32, normalised as the model expects.

    Example: `ImagePreprocessor(64)(Image.open("shoe.jpg"))` → array of shape (3, 64, 64).
    `draft_factor` (≥ 1) bounds JPEG draft decoding in `from_bytes`: the decoded image keeps at least
    `draft_factor × size` pixels on both sides before the bicubic resize; 0 turns draft mode off.
    """

    size: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    draft_factor: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ModelError(f"image size must be a positive integer, got {self.size!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ModelError(f"unknown resize mode {self.resize_mode!r}", f"use one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(f"unknown interpolation {self.interpolation!r}", f"use one of {tuple(INTERPOLATIONS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelError("mean and std need three values each, std > 0")
        if self.draft_factor != 0 and self.draft_factor < 1:
            raise ModelError(f"draft_factor must be 0 (off) or ≥ 1, got {self.draft_factor}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """One PIL image → `(3, size, size)` float32 (resize, crop or pad, RGB, normalise)."""
        resample = INTERPOLATIONS[self.interpolation]
        if self.resize_mode == "squash":
            image = image.resize((self.size, self.size), resample)
        elif self.resize_mode == "shortest":
            image = _center_crop(image.resize(_shortest_edge_size(image.size, self.size), resample), self.size)
        else:
            image = image.resize(_longest_edge_size(image.size, self.size), resample)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        if self.resize_mode == "longest":
            pixels = _center_crop_or_pad(pixels, self.size, self.fill_color)
        return self._normalise(pixels)

    def _normalise(self, pixels: np.ndarray) -> np.ndarray:
        """`(S, S, 3)` values 0..255 → `(3, S, S)` float32: (x / 255 − mean) / std, in torchvision's order."""
        pixels = pixels / np.float32(255.0)
        pixels -= np.asarray(self.mean, dtype=np.float32)
        pixels /= np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def from_bytes(self, data: bytes) -> np.ndarray:
        """Encoded image (JPEG, PNG, WebP, ...) → `(3, size, size)` float32; JPEG decodes in draft mode.

        Raises `ImageTooLarge` above the pixel limit (`gcl_vectordb.imaging`), `DataError` for data that
        does not decode."""
        try:
            image = open_image(data)
            if self.draft_factor and image.format == "JPEG":
                side = int(round(self.size * self.draft_factor))
                image.draft("RGB", (side, side))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image ({len(data)} bytes): {exc}",
                            "the file is not a readable image; skip or replace it") from exc
        return self(image)

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Several PIL images → `(n, 3, size, size)` float32 (`(0, 3, S, S)` for none)."""
        out = np.empty((len(images), 3, self.size, self.size), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = self(image)
        return out


def _shortest_edge_size(size: tuple[int, int], target: int) -> tuple[int, int]:
    """(w, h) with the shorter side = target, the longer side truncated as torchvision does."""
    w, h = size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(target * long / short)
    return (target, new_long) if w <= h else (new_long, target)


def _longest_edge_size(size: tuple[int, int], target: int) -> tuple[int, int]:
    """(w, h) with the longer side = target, rounded as open_clip's ResizeKeepRatio(longest=1) does."""
    w, h = size
    ratio = max(h / target, w / target)
    return round(w / ratio), round(h / ratio)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _center_crop_or_pad(pixels: np.ndarray, size: int, fill: int) -> np.ndarray:
    """`(h, w, 3)` → `(size, size, 3)`: pad with `fill` (left/top get the smaller half), then centre crop."""
    h, w = pixels.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        pixels = np.pad(pixels, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                        constant_values=fill)
        h, w = pixels.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return pixels[top : top + size, left : left + size]
