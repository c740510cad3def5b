"""One reader interface over both Marqo-GS layouts: `Dataset` (`gcl_vectordb.data.layouts.open_dataset` opens one).

- official layout: `corpus_1.json`, `corpus_2.json`, `<stem>.csv` (+ `_gt_dev/_gt_test/_queries.json`);
- Hugging Face parquet layout (`Marqo/marqo-GS-10M`): `<hf_split>-NNNNN-of-NNNNN.parquet`, in the folder
  or its `data/` sub-folder, image bytes embedded; the products are the distinct ids of the pairs.

Products stream in batches (`iter_products`); split tables come whole (`read_split`) or in batches
(`iter_judgments`). Bad rows go to a `RejectLog` as (source, row, reason) and are skipped.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, NamedTuple

import numpy as np

from gcl_vectordb.data.images import ImageRejected, ImageResolver
from gcl_vectordb.data.records import (
    CORPORA,
    WHOLE,
    Judgment,
    Partition,
    Product,
    RejectLog,
    Split,
    get_split,
)
from gcl_vectordb.data.tables import (
    DEFAULT_WEIGHT_COLUMN,
    JUDGMENT_COLUMNS,
    frame_to_judgments,
    normalise_split_frame,
)
from gcl_vectordb.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

Layout = Literal["official", "parquet"]
DATA_HINT = (
    "create one with `gcl-vdb data synth --out DIR` or fetch one with `gcl-vdb data download --out DIR`"
)


class Candidate(NamedTuple):
    """A corpus entry before the checks: `problem` is a REJECT_REASONS code the layout found itself;
    `image_local` the image path as the entry gives it (the product's `image_path` is set from it)."""

    source: str
    row: int
    product_id: str
    product: Product | None
    problem: str | None = None
    detail: str = ""
    image_local: str | None = None


class ProductBatch(NamedTuple):
    """Products of a corpus read in one batch. `end`: corpus entries read so far (the resume cursor
    once the batch is stored); `complete`: the corpus's last batch (it may hold no product)."""

    products: list[Product]
    end: int
    complete: bool


class RawChunk(NamedTuple):
    """Rows of a split table as read, before normalisation; `rows` are 1-based data-row numbers."""

    frame: pd.DataFrame
    source: str
    rows: np.ndarray


def default_images_dir(root: Path) -> Path:
    """`root/images` (synthetic data), else a sibling `images*` folder (what `gcl-vdb data download`
    extracts next to the dataset: `marqo-gs-dataset/images_wfash`), else the dataset folder itself."""
    candidates = [root / "images", *sorted(root.parent.glob("images*"))]
    return next((folder for folder in candidates if folder.is_dir()), root)


class Dataset(ABC):
    """A Marqo-GS dataset on disk. Subclasses read one layout; every method here serves both."""

    layout: ClassVar[Layout]

    def __init__(self, root: Path, images_dir: Path | None = None) -> None:
        self.root = root
        # image_local paths are re-rooted onto this folder (see gcl_vectordb.data.images)
        self.images_dir = images_dir if images_dir is not None else default_images_dir(root)

    @property
    @abstractmethod
    def splits(self) -> tuple[Split, ...]:
        """The splits present, in SPLITS order."""

    @property
    @abstractmethod
    def corpora(self) -> tuple[int, ...]:
        """The corpora present (1, 2 or both)."""

    @abstractmethod
    def count_products(self, corpus: int) -> int:
        """Distinct products of a corpus as stored (before rejects); for progress bars and summaries."""

    @abstractmethod
    def _candidates(self, corpus: int, partition: Partition) -> Iterator[list[Candidate]]:
        """The corpus entries of `partition` in their deterministic order, in chunks; products without
        `image_path` (`image_local` says where the image is)."""

    @abstractmethod
    def _raw_split_chunks(
        self,
        split: Split,
        columns: Sequence[str] | None,
        chunk_rows: int,
        weight_column: str | None,
        rejects: RejectLog | None,
    ) -> Iterator[RawChunk]:
        """The split's rows as read (at least one chunk, maybe empty), after checking the required
        columns (DataError names them); rows the layout cannot parse at all go to `rejects`."""

    def split(self, split: Split | str) -> Split:
        """Resolve a split (object, CLI name, stem or HF name) that this dataset has."""
        resolved = split if isinstance(split, Split) else get_split(split)
        if resolved not in self.splits:
            present = ", ".join(s.name for s in self.splits) or "none"
            raise DataError(f"split {resolved.name} is not in {self.root} (present: {present})")
        return resolved

    def iter_products(
        self,
        corpus: int,
        *,
        batch_size: int = 1024,
        rejects: RejectLog | None = None,
        check_images: bool = True,
        partition: Partition = WHOLE,
    ) -> Iterator[list[Product]]:
        """Stream a corpus's products in batches of `batch_size` (the last may be shorter).

        Order: deterministic, the same on every call — the order of `corpus_N.json` (official layout) or
        of first appearance over the corpus's splits in SPLITS order, files sorted by name (parquet);
        `product_batches` resumes at a position. A rejected entry (a
        repeated id, an image that is missing or outside the images folder, neither title nor image) is
        reported to `rejects` and skipped. `check_images=False` leaves image paths unchecked (no file
        access): for counting products and reading ids, never for reading images. `partition`: only the
        products (and rejected rows) of that part of the corpus (`Partition`).
        """
        for batch in self.product_batches(corpus, batch_size=batch_size, rejects=rejects,
                                          check_images=check_images, partition=partition):
            if batch.products:
                yield batch.products

    def product_batches(
        self,
        corpus: int,
        *,
        batch_size: int = 1024,
        rejects: RejectLog | None = None,
        check_images: bool = True,
        start: int = 0,
        retry: Collection[str] = (),
        partition: Partition = WHOLE,
    ) -> Iterator[ProductBatch]:
        """`iter_products` with the position in the corpus: what a resumable reader (ingest) needs.

        An entry is one item of `corpus_N.json` (repeats included) or one distinct product id (parquet);
        `count_products` counts them. Entries before `start` are skipped without a report, except those
        whose product id is in `retry` (rejected earlier), which are read and checked again. Every batch
        but the last holds `batch_size` products; the last (`complete`) may hold none. `partition`: only
        the entries (products and rejected rows) of that part of the corpus (`Partition`); positions then
        count the part's entries.
        """
        if corpus not in CORPORA:
            raise DataError(f"corpus must be one of {CORPORA}, not {corpus!r}")
        if batch_size < 1 or start < 0:
            raise DataError(f"batch_size must be ≥ 1 and start ≥ 0 (got {batch_size}, {start})")
        resolver = ImageResolver(self.images_dir)
        locate = resolver.resolve if check_images else resolver.locate
        products: list[Product] = []
        position = 0
        for chunk in self._candidates(corpus, partition):
            for candidate in chunk:
                position += 1
                if position <= start and candidate.product_id not in retry:
                    continue
                product, problem, detail = _checked(candidate, locate)
                if product is not None:
                    products.append(product)
                    if len(products) == batch_size:
                        yield ProductBatch(products, position, False)
                        products = []
                elif rejects is not None:
                    rejects.add(candidate.source, candidate.row, problem, detail, candidate.product_id)
        yield ProductBatch(products, position, True)

    def extra_columns(self, sample: int = 1000) -> list[str]:
        """The products' extra columns (kept as payload besides the schema's), from the first `sample`
        products of each corpus: the columns a collection records for `--filter`."""
        keys: set[str] = set()
        for corpus in self.corpora:
            first = next(self.iter_products(corpus, batch_size=sample, check_images=False), [])
            keys.update(key for product in first for key in product.extra)
        return sorted(keys)

    def iter_split_frames(
        self,
        split: Split | str,
        *,
        columns: Sequence[str] | None = None,
        chunk_rows: int = 1 << 16,
        rejects: RejectLog | None = None,
        weight_column: str | None = DEFAULT_WEIGHT_COLUMN,
    ) -> Iterator[pd.DataFrame]:
        """The split table in normalised chunks of ≤ `chunk_rows` rows (see `read_split`), bounded memory."""
        for raw in self._raw_split_chunks(self.split(split), columns, chunk_rows, weight_column, rejects):
            yield normalise_split_frame(
                raw.frame, source=raw.source, rows=raw.rows, weight_column=weight_column, rejects=rejects
            )

    def read_split(
        self,
        split: Split | str,
        *,
        rejects: RejectLog | None = None,
        columns: Sequence[str] | None = None,
        weight_column: str = DEFAULT_WEIGHT_COLUMN,
    ) -> pd.DataFrame:
        """The whole split table, normalised dtypes (gcl_vectordb.data.tables); bad rows reported, dropped.

        `columns`: the optional columns to read besides query, product_id and `weight_column`
        (None: all; the parquet `image` column only when named). Rows in file order.
        """
        import pandas as pd  # 0.6 s: imported when a whole table is read, not by `import gcl_vectordb.data`

        frames = list(self.iter_split_frames(
            split, columns=columns, chunk_rows=1 << 18, rejects=rejects, weight_column=weight_column
        ))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]  # ≥ 1 chunk

    def iter_judgments(
        self,
        split: Split | str,
        *,
        batch_size: int = 10_000,
        rejects: RejectLog | None = None,
        weight_column: str = DEFAULT_WEIGHT_COLUMN,
    ) -> Iterator[list[Judgment]]:
        """The split's rows as `Judgment` batches (≤ batch_size each), in file order, bad rows skipped."""
        for frame in self.iter_split_frames(
            split, columns=JUDGMENT_COLUMNS, chunk_rows=batch_size, rejects=rejects,
            weight_column=weight_column,
        ):
            if len(frame):
                yield frame_to_judgments(frame)

    def queries(self, split: Split | str) -> dict[str, str]:
        """query_id → query text, in order of first appearance (without query_id, the text is its id)."""
        found: dict[str, str] = {}
        for frame in self.iter_split_frames(
            split, columns=("query_id",), chunk_rows=1 << 18, rejects=None, weight_column=None
        ):
            ids = frame["query_id"] if "query_id" in frame.columns else frame["query"]
            for query_id, text in zip(ids.tolist(), frame["query"].tolist(), strict=True):
                found.setdefault(str(query_id), text)
        return found


def _checked(candidate: Candidate, locate) -> tuple[Product | None, str, str]:
    """The candidate as a product with its image file located, or (None, reason, detail)."""
    product = candidate.product
    if candidate.problem is not None or product is None:
        return None, candidate.problem or "malformed-row", candidate.detail
    if candidate.image_local is not None:
        try:
            product = dataclasses.replace(product, image_path=locate(candidate.image_local))
        except ImageRejected as exc:
            return None, exc.reason, exc.detail
    if not product.has_image and not (product.title or "").strip():
        return None, "empty-title", "the product has neither a title nor an image"
    return product, "", ""


__all__ = ["DATA_HINT", "Candidate", "Dataset", "Layout", "ProductBatch", "RawChunk", "default_images_dir"]
