"""Typed records of the Marqo-GS benchmark: products, relevance judgments, splits, rejected rows.

These records cross module boundaries (reader → ingest → store, reader → trainer, reader → evaluation);
the split table here is the only place that maps split names to file stems, corpora and HF split names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from gcl_vectordb.data.idset import hash_ids
from gcl_vectordb.errors import ConfigError, DataError

QueryKind = Literal["train", "unseen"]


@dataclass(frozen=True, slots=True)
class Split:
    """One of the four Marqo-GS evaluation splits (docs/protocol.md, "The four splits")."""

    name: str  # CLI name, e.g. "novel-doc"
    stem: str  # file stem of the official layout, e.g. "query_0_product_id_1"
    corpus: int  # 1 or 2: the product corpus the split retrieves from
    queries: QueryKind  # "train": training queries; "unseen": held-out queries
    hf_name: str  # split name in the Hugging Face parquet release


SPLITS: tuple[Split, ...] = (
    Split("in-domain", "query_0_product_id_0", 1, "train", "in_domain"),
    Split("novel-query", "query_1_product_id_0", 1, "unseen", "novel_query"),
    Split("novel-doc", "query_0_product_id_1", 2, "train", "novel_document"),
    Split("zero-shot", "query_1_product_id_1", 2, "unseen", "zero_shot"),
)
CORPORA: tuple[int, ...] = (1, 2)


def get_split(name: str) -> Split:
    """Look a split up by CLI name, file stem or HF name."""
    for split in SPLITS:
        if name in (split.name, split.stem, split.hf_name):
            return split
    raise DataError(
        f"unknown split {name!r}", f"use one of: {', '.join(s.name for s in SPLITS)}"
    )


@dataclass(frozen=True, slots=True)
class Product:
    """A document of the corpus: a title and an image, either a local file or embedded bytes.

    `title` is None where the corpus has none (null, missing); a string, even an empty one, is a title, as
    in the official evaluation (docs/protocol.md, "Products, rejects and image paths"). `image_path` is
    the checked local file (inside the images folder, symlinks resolved); `image_bytes` the encoded image
    of the Hugging Face parquet layout, and `image_cell` where it lies (`<file relative to the dataset
    root>#<1-based row>`). At most one of `image_path` / `image_bytes` is set.
    """

    product_id: str
    title: str | None
    corpus: int
    image_path: Path | None = None
    image_bytes: bytes | None = field(default=None, repr=False)
    extra: Mapping[str, str] = field(default_factory=dict)
    image_cell: str | None = None

    @property
    def has_image(self) -> bool:
        """Whether the product refers to an image at all (a file or embedded bytes)."""
        return self.image_path is not None or self.image_bytes is not None

    def read_image_bytes(self) -> bytes | None:
        """The encoded image (JPEG/PNG bytes), or None where the product has no image."""
        if self.image_bytes is not None:
            return self.image_bytes
        if self.image_path is not None:
            return self.image_path.read_bytes()
        return None


@dataclass(frozen=True, slots=True)
class Judgment:
    """One (query, product) row of a split: the graded relevance the loss and the evaluation use.

    Only `query` and `product_id` are always present; the score columns are None where the file lacks them.
    """

    query: str
    product_id: str
    query_id: str | None = None
    position: int | None = None
    score_linear: float | None = None
    score_reciprocal: float | None = None
    no_score: float | None = None
    pair_id: str | None = None


@dataclass(frozen=True, slots=True)
class Partition:
    """Part `index` of `count` of every corpus: the products whose id hashes to it (`--shard I/N`).

    A product belongs to part `hash_ids([product_id]) mod count` (SipHash with a fixed key: the same in
    every process), so N processes, each reading the whole corpus and embedding its own part, cover every
    product exactly once, in any order and on any machine. Rejected rows follow their product id too.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int) and 0 <= self.index < self.count):
            raise ConfigError(f"shard {self.index}/{self.count} does not exist",
                              "give I/N with 0 ≤ I < N, e.g. --shard 0/4 … --shard 3/4")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """`"2/8"` → `Partition(2, 8)`; anything else is a `ConfigError`."""
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}")
        return cls(int(index), int(count))

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, hashes: np.ndarray) -> np.ndarray:
        """`(n,) bool`: which of the `hash_ids` values belong to this part."""
        return np.asarray(hashes, dtype=np.uint64) % np.uint64(self.count) == np.uint64(self.index)

    def owns_ids(self, product_ids: list[str]) -> np.ndarray:
        if self.whole:
            return np.ones(len(product_ids), dtype=bool)
        return self.owns(hash_ids(product_ids))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Partition(0, 1)
"""Every product (no `--shard`)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was reported and skipped: where it was, which product, and why."""

    source: str  # file name (or "corpus_1.json", "in_domain parquet", ...)
    row: int  # 1-based data row within the source (0 where unknown)
    reason: str  # a short code from REJECT_REASONS, for counting
    detail: str = ""  # what exactly was wrong, for people
    product_id: str | None = None

    def __str__(self) -> str:
        who = f" product {self.product_id}" if self.product_id is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.source} row {self.row}{who}: {self.reason}{detail}"


REJECT_REASONS: tuple[str, ...] = (
    "duplicate-product-id",
    "missing-image",
    "image-outside-folder",
    "corrupt-image",
    "image-too-large",
    "empty-title",
    "non-numeric-score",
    "malformed-row",
)
RETRYABLE_REASONS: frozenset[str] = frozenset(
    {"missing-image", "image-outside-folder", "corrupt-image", "image-too-large", "empty-title"})
"""Product rejects that fixing files outside the corpus can cure (an image, the images folder); a re-run
of `gcl-vdb ingest` retries them. `empty-title`: a product with neither a title nor an image (and, from
older versions, image products without a title, which are kept now)."""


class RejectLog:
    """Collects rejected rows; readers and ingest report into it instead of raising, so the rest goes on."""

    def __init__(self) -> None:
        self._rejects: list[Reject] = []

    def add(
        self, source: str, row: int, reason: str, detail: str = "", product_id: str | None = None
    ) -> None:
        assert reason in REJECT_REASONS, reason
        self._rejects.append(Reject(source, row, reason, detail, product_id))

    def __len__(self) -> int:
        return len(self._rejects)

    def __iter__(self) -> Iterator[Reject]:
        return iter(self._rejects)

    def drain(self) -> list[Reject]:
        """Remove and return the rejects collected so far (streaming consumers keep memory flat)."""
        taken, self._rejects = self._rejects, []
        return taken

    def reasons(self) -> dict[str, int]:
        """Counts per reason, for summaries."""
        counts: dict[str, int] = {}
        for reject in self._rejects:
            counts[reject.reason] = counts.get(reject.reason, 0) + 1
        return counts
