"""`dataset_info`: what a Marqo-GS folder holds — per split and per corpus — and what would be rejected.

Reads everything once, streaming (ids are counted as 64-bit hashes, not kept as strings), so it also
serves as a full validation pass: every reject the reader would report is counted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gcl_vectordb.data.dataset import Dataset
from gcl_vectordb.data.idset import hash_ids
from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.data.records import SPLITS, RejectLog

EXAMPLE_REJECTS = 5


@dataclass(frozen=True)
class SplitInfo:
    """One split table: distinct queries and products, rows (pairs), score ranges `(min, max)`."""

    name: str
    stem: str
    corpus: int
    queries: int
    pairs: int
    products: int
    score_linear: tuple[float, float] | None
    score_reciprocal: tuple[float, float] | None
    rejected: int


@dataclass(frozen=True)
class CorpusInfo:
    """One corpus: products accepted, and of those how many have an image; rejects by kind."""

    corpus: int
    products: int
    images_found: int
    images_missing: int  # products rejected because their image file does not exist (or is outside the folder)
    without_image: int  # accepted products with no image reference at all (title only)
    rejected: int  # all rejects of the corpus, missing images included
    without_title: int = 0  # accepted products with no title (image only)


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    layout: str
    splits: tuple[SplitInfo, ...]
    corpora: tuple[CorpusInfo, ...]
    missing_splits: tuple[str, ...]
    rejects: dict[str, int] = field(default_factory=dict)  # reason → count, over everything read
    reject_examples: tuple[str, ...] = ()


def _range(values: list[np.ndarray]) -> tuple[float, float] | None:
    present = [v[~np.isnan(v)] for v in values]
    present = [v for v in present if len(v)]
    if not present:
        return None
    return float(min(v.min() for v in present)), float(max(v.max() for v in present))


def split_info(dataset: Dataset, name: str, rejects: RejectLog) -> SplitInfo:
    split = dataset.split(name)
    before = len(rejects)
    query_hashes, product_hashes, linear, reciprocal = [], [], [], []
    pairs = 0
    for frame in dataset.iter_split_frames(split, columns=("score_reciprocal",), chunk_rows=1 << 18,
                                           rejects=rejects):
        pairs += len(frame)
        query_hashes.append(np.unique(hash_ids(frame["query"].tolist())))
        product_hashes.append(np.unique(hash_ids(frame["product_id"].tolist())))
        linear.append(frame["score_linear"].to_numpy(dtype=np.float64))
        if "score_reciprocal" in frame.columns:
            reciprocal.append(frame["score_reciprocal"].to_numpy(dtype=np.float64))
    return SplitInfo(
        name=split.name, stem=split.stem, corpus=split.corpus,
        queries=len(np.unique(np.concatenate(query_hashes))) if query_hashes else 0,
        pairs=pairs,
        products=len(np.unique(np.concatenate(product_hashes))) if product_hashes else 0,
        score_linear=_range(linear), score_reciprocal=_range(reciprocal),
        rejected=len(rejects) - before,
    )


def corpus_info(dataset: Dataset, corpus: int, rejects: RejectLog, check_images: bool) -> CorpusInfo:
    before_total, before_missing = len(rejects), _missing_images(rejects)
    products = with_image = without_title = 0
    for batch in dataset.iter_products(corpus, batch_size=4096, rejects=rejects, check_images=check_images):
        products += len(batch)
        with_image += sum(p.has_image for p in batch)
        without_title += sum(p.title is None for p in batch)
    return CorpusInfo(
        corpus=corpus, products=products, images_found=with_image,
        images_missing=_missing_images(rejects) - before_missing,
        without_image=products - with_image, rejected=len(rejects) - before_total, without_title=without_title,
    )


def _missing_images(rejects: RejectLog) -> int:
    reasons = rejects.reasons()
    return reasons.get("missing-image", 0) + reasons.get("image-outside-folder", 0)


def dataset_info(
    root: Path | str, *, check_images: bool = True, images_dir: Path | None = None
) -> DatasetInfo:
    """Summarise a dataset folder (either layout); `check_images` stats every image file (official layout)."""
    dataset = open_dataset(root, images_dir=images_dir)
    rejects = RejectLog()
    splits = tuple(split_info(dataset, split.name, rejects) for split in dataset.splits)
    corpora = tuple(corpus_info(dataset, corpus, rejects, check_images) for corpus in dataset.corpora)
    return DatasetInfo(
        root=dataset.root, layout=dataset.layout, splits=splits, corpora=corpora,
        missing_splits=tuple(s.name for s in SPLITS if s not in dataset.splits),
        rejects=rejects.reasons(),
        reject_examples=tuple(str(r) for _, r in zip(range(EXAMPLE_REJECTS), rejects, strict=False)),
    )
