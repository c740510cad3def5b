"""torch side of the training data: a `Dataset` of pairs, image loading in workers, the batch record.

`PairDataset[i]` tokenizes the query and the product title and decodes + preprocesses the product image
with the model's own preprocessing (the one ingest uses), so DataLoader workers do the decoding. An image
that is missing or cannot be decoded never stops a worker: the item comes back without an image
(`has_image` False: the loss drops the pair from image terms and fuses the title alone, as ingest would
for a title-only product) and carries the reason, which the training loop reports to its `RejectLog`.

Light augmentation (off by default): a random resized crop (area 80–100 %, aspect 3/4–4/3) and a
horizontal flip, drawn from a generator seeded by (seed, epoch, row) so runs and resumes repeat exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gcl_vectordb.data import ImageRejected, Product, decode_image
from gcl_vectordb.encoders import ClipTokenizer, ImagePreprocessor
from gcl_vectordb.errors import DataError
from trainer.pairs import PairTable


@dataclass(frozen=True)
class Augment:
    """Random resized crop (area fraction `scale`, aspect `ratio`) then a horizontal flip with `flip` odds."""

    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        area = width * height * rng.uniform(*self.scale)
        aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        crop_w = min(width, max(1, round(math.sqrt(area * aspect))))
        crop_h = min(height, max(1, round(math.sqrt(area / aspect))))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        image = image.crop((left, top, left + crop_w, top + crop_h))
        if rng.random() < self.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image


def load_pixels(
    product: Product,
    preprocessor: ImagePreprocessor,
    augment: Augment | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """The product's image as `(3, S, S)` float32, or (None, reason) — reason None for a title-only product.

    Reasons start with a `REJECT_REASONS` code: "missing-image: …", "corrupt-image: …" or "image-too-large: …".
    """
    if product.image_path is None and product.image_bytes is None:
        return None, None
    try:
        if augment is None:
            return preprocessor.from_bytes(product.read_image_bytes()), None
        return preprocessor(augment(decode_image(product), rng or np.random.default_rng())), None
    except ImageRejected as exc:
        return None, f"{exc.reason}: {exc.detail}"
    except OSError as exc:
        return None, f"missing-image: {product.image_path}: {exc.strerror or exc}"
    except DataError as exc:
        return None, f"corrupt-image: {exc.message}"


class PairDataset(Dataset):
    """Item i of a `PairTable` as tensors: tokens (context,), pixels (3, S, S), weight, keys.

    Set `epoch` before building an epoch's DataLoader (it seeds the augmentation).
    """

    def __init__(
        self,
        pairs: PairTable,
        tokenizer: ClipTokenizer,
        preprocessor: ImagePreprocessor,
        *,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.pairs = pairs
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, row: int) -> dict[str, Any]:
        pairs = self.pairs
        query_key, product_key = int(pairs.query_index[row]), int(pairs.product_index[row])
        product = pairs.products[product_key]
        rng = np.random.default_rng([self.seed, self.epoch, row]) if self.augment is not None else None
        pixels, problem = load_pixels(product, self.preprocessor, self.augment, rng)
        size = self.preprocessor.size
        tokens = self.tokenizer([pairs.queries[query_key], product.title or ""])
        return {
            "row": row,
            "query_tokens": tokens[0],
            "title_tokens": tokens[1],
            "pixels": pixels if pixels is not None else np.zeros((3, size, size), dtype=np.float32),
            "has_image": pixels is not None,
            "has_title": product.title is not None,
            "weight": float(pairs.weights[row]),
            "query_key": query_key,
            "product_key": product_key,
            "image_problem": None if problem is None else (product.product_id, problem),
        }


@dataclass(frozen=True, eq=False)
class PairBatch:
    """B pairs: query_tokens, title_tokens (B, context) int64; pixels (B, 3, S, S) float32; has_image,
    has_title (B,) bool (a product without a title tokenises "" and is left out of title terms); weights (B,) float32; rows, query_keys, product_keys (B,) int64; image problems (product_id, reason)."""

    rows: torch.Tensor
    query_tokens: torch.Tensor
    title_tokens: torch.Tensor
    pixels: torch.Tensor
    has_image: torch.Tensor
    has_title: torch.Tensor
    weights: torch.Tensor
    query_keys: torch.Tensor
    product_keys: torch.Tensor
    image_problems: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.rows)


def collate_pairs(items: Sequence[dict[str, Any]]) -> PairBatch:
    """Stack `PairDataset` items into a `PairBatch` (the DataLoader's collate_fn)."""

    def stacked(key: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray([item[key] for item in items]), dtype=dtype)

    return PairBatch(
        rows=stacked("row", torch.int64),
        query_tokens=torch.from_numpy(np.stack([item["query_tokens"] for item in items])),
        title_tokens=torch.from_numpy(np.stack([item["title_tokens"] for item in items])),
        pixels=torch.from_numpy(np.stack([item["pixels"] for item in items])),
        has_image=stacked("has_image", torch.bool),
        has_title=stacked("has_title", torch.bool),
        weights=stacked("weight", torch.float32),
        query_keys=stacked("query_key", torch.int64),
        product_keys=stacked("product_key", torch.int64),
        image_problems=tuple(item["image_problem"] for item in items if item["image_problem"] is not None),
    )


class ProductImages(Dataset):
    """Products → (pixels (3, S, S) or zeros, has_image, problem) for embedding a corpus in batches."""

    def __init__(self, products: Sequence[Product], preprocessor: ImagePreprocessor) -> None:
        self.products = products
        self.preprocessor = preprocessor

    def __len__(self) -> int:
        return len(self.products)

    def __getitem__(self, index: int) -> tuple[np.ndarray, bool, str | None]:
        pixels, problem = load_pixels(self.products[index], self.preprocessor)
        if pixels is None:
            size = self.preprocessor.size
            return np.zeros((3, size, size), dtype=np.float32), False, problem
        return pixels, True, None


def collate_images(items: Sequence[tuple[np.ndarray, bool, str | None]]) -> tuple[np.ndarray, np.ndarray, list]:
    """`ProductImages` items → pixels (B, 3, S, S), has_image (B,) bool, problems (B,) str | None."""
    return (np.stack([item[0] for item in items]), np.asarray([item[1] for item in items], dtype=bool),
            [item[2] for item in items])
