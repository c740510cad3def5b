"""torch vs ONNX Runtime on a fixed batch: the check every export must pass.

For each tower the same inputs go through the torch model and the ONNX encoder, once as a batch of 1
and once as a batch of `batch` rows (so the dynamic batch axis is exercised). The figure is the largest
cosine deviation over rows, max_r (1 − cos(torch_r, onnx_r)), plus the largest absolute difference.
"""

from __future__ import annotations

import numpy as np
import torch

from gcl_vectordb.encoders.manifest import Parity
from gcl_vectordb.encoders.models import LoadedClip
from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder
from gcl_vectordb.encoders.protocol import l2_normalize

PARITY_TEXTS = (
    "red summer dress",
    "Men's leather boots, size 44 — waterproof!",
    "ÉCRU linen shirt (slim fit) 100% cotton & more",
    "",
    "striped " * 60,  # longer than the context: exercises truncation with the end token kept
    "blue denim jacket with 3 pockets",
)


def parity_pixels(image_size: int, batch: int) -> np.ndarray:
    """`(batch, 3, S, S)` float32, seeded, in the range normalised images take."""
    return np.random.default_rng(20240613).normal(0.0, 1.0, (batch, 3, image_size, image_size)).astype(np.float32)


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    ref, cand = l2_normalize(reference), l2_normalize(candidate)
    cosine = np.sum(ref.astype(np.float64) * cand, axis=1)
    return Parity(
        max_cosine_deviation=max(0.0, float(np.max(1.0 - cosine))),  # rounding can give -1e-8
        max_abs_diff=float(np.max(np.abs(reference - candidate))),
        rows=int(len(reference)),
    )


def _merge(parts: list[Parity]) -> Parity:
    return Parity(max(p.max_cosine_deviation for p in parts), max(p.max_abs_diff for p in parts),
                  sum(p.rows for p in parts))


def tower_parity(loaded: LoadedClip, encoder: OnnxEncoder, batch: int = 5) -> dict[str, Parity]:
    """{"text": Parity, "image": Parity} over a batch of 1 and a batch of `batch` rows for each tower."""
    model = loaded.model.eval()
    texts = [PARITY_TEXTS[i % len(PARITY_TEXTS)] for i in range(batch)]
    pixels = parity_pixels(loaded.image_size, batch)
    text_parts, image_parts = [], []
    with torch.inference_mode():
        for rows in (1, batch):
            tokens = encoder.tokenize(texts[:rows])
            torch_text = model.encode_text(torch.from_numpy(tokens), normalize=True).float().numpy()
            text_parts.append(compare(torch_text, encoder.encode_texts(texts[:rows])))
            torch_image = model.encode_image(torch.from_numpy(pixels[:rows]), normalize=True).float().numpy()
            image_parts.append(compare(torch_image, encoder.encode_pixels(pixels[:rows])))
    return {"text": _merge(text_parts), "image": _merge(image_parts)}
