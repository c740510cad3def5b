"""The Hugging Face parquet layout of Marqo-GS-10M: one table per split, image bytes in every row.

There is no separate corpus: corpus 1 is the distinct products of `in_domain` + `novel_query`, corpus 2 of
`novel_document` + `zero_shot` (docs/protocol.md, "The Hugging Face parquet layout"). A product's first
row supplies its title and image. The `image` column is the HF Image feature (struct {bytes, path}) or
plain binary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gcl_vectordb.data.dataset import Candidate, Dataset, RawChunk
from gcl_vectordb.data.idset import CompactIdSet, hash_ids
from gcl_vectordb.data.records import SPLITS, Partition, Product, RejectLog, Split
from gcl_vectordb.data.tables import check_columns, selected_columns
from gcl_vectordb.errors import DataError
from gcl_vectordb.imaging import contained_file

log = logging.getLogger(__name__)
IMAGE_COLUMN = "image"


def parquet_files(root: Path) -> list[Path]:
    """The `*.parquet` files of `root`, else of `root/data` (where the Hugging Face repository keeps them)."""
    for folder in (root, root / "data"):
        files = sorted(folder.glob("*.parquet"))
        if files:
            return files
    return []


def open_parquet(path: Path) -> pq.ParquetFile:
    """`pyarrow.parquet.ParquetFile`, or DataError naming the file when it is not readable parquet."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path.name} is not a readable parquet file ({exc})", "download it again") from None


def split_of_file(path: Path) -> Split | None:
    """`in_domain-00000-of-00004.parquet` → the in-domain split; None for a file of no known split."""
    prefix = path.name.split("-", 1)[0].removesuffix(".parquet")
    return next((split for split in SPLITS if split.hf_name == prefix), None)


class ParquetDataset(Dataset):
    """Split parquet files named by HF split (`<hf_split>-NNNNN-of-NNNNN.parquet`)."""

    layout = "parquet"

    def __init__(self, root: Path, files: Sequence[Path], images_dir: Path | None = None) -> None:
        super().__init__(root, images_dir)
        self._files: dict[Split, list[Path]] = {}
        for path in sorted(files):
            split = split_of_file(path)
            if split is not None:
                self._files.setdefault(split, []).append(path)
        if not self._files:
            names = ", ".join(s.hf_name for s in SPLITS)
            raise DataError(f"{root}: no parquet file is named after a split ({names})")
        self._counts: dict[int, int] = {}

    @property
    def splits(self) -> tuple[Split, ...]:
        return tuple(split for split in SPLITS if split in self._files)

    @property
    def corpora(self) -> tuple[int, ...]:
        return tuple(sorted({split.corpus for split in self.splits}))

    def _corpus_files(self, corpus: int) -> list[Path]:
        return [path for split in self.splits if split.corpus == corpus for path in self._files[split]]

    def count_products(self, corpus: int) -> int:
        if corpus not in self._counts:
            hashes = []
            for path in self._corpus_files(corpus):
                parquet = open_parquet(path)
                check_columns(parquet.schema_arrow.names, source=path.name, weight_column=None)
                hashes.append(hash_ids(parquet.read(columns=["product_id"]).column(0).cast("string").to_pylist()))
            self._counts[corpus] = len(np.unique(np.concatenate(hashes))) if hashes else 0
        return self._counts[corpus]

    def extra_columns(self, sample: int = 1000) -> list[str]:
        """A parquet product has no extra columns: its id, title and image only."""
        return []

    def _candidates(self, corpus: int, partition: Partition) -> Iterator[list[Candidate]]:
        seen = CompactIdSet()
        for path in self._corpus_files(corpus):
            name = str(path.relative_to(self.root))
            parquet = open_parquet(path)
            check_columns(parquet.schema_arrow.names, source=path.name, weight_column=None)
            has_title = "title" in parquet.schema_arrow.names
            has_image = IMAGE_COLUMN in parquet.schema_arrow.names
            offset = 0
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=["product_id", "title"][: 1 + has_title])
                ids = [None if v is None else str(v) for v in table.column("product_id").to_pylist()]
                hashes = hash_ids(["" if v is None else v for v in ids])
                # other parts' products are skipped before their image bytes are read
                first = np.flatnonzero(~seen.add_hashes(hashes) & partition.owns(hashes))
                if len(first):
                    titles = [None] * len(first)
                    if has_title:
                        titles = table.column("title").take(first).to_pylist()
                    images = [(None, None)] * len(first)
                    if has_image:
                        images = _image_cells(parquet.read_row_group(group, columns=[IMAGE_COLUMN])[0], first)
                    yield [
                        _candidate(path.name, offset + int(i) + 1, ids[i], title, image, corpus, name)
                        for i, title, image in zip(first.tolist(), titles, images, strict=True)
                    ]
                offset += table.num_rows

    def _raw_split_chunks(
        self,
        split: Split,
        columns: Sequence[str] | None,
        chunk_rows: int,
        weight_column: str | None,
        rejects: RejectLog | None,
    ) -> Iterator[RawChunk]:
        yielded = False
        for path in self._files[split]:
            parquet = open_parquet(path)
            names = parquet.schema_arrow.names
            check_columns(names, source=path.name, weight_column=weight_column)
            wanted = [c for c in names if c != IMAGE_COLUMN] if columns is None else list(columns)
            usecols = selected_columns(names, wanted, weight_column)
            offset = 0
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=usecols):
                frame = batch.to_pandas()
                yield RawChunk(frame, path.name, np.arange(offset + 1, offset + len(frame) + 1))
                offset += len(frame)
                yielded = True
            if not yielded:  # an empty file: one empty chunk with the columns
                empty = parquet.schema_arrow.empty_table().select(usecols).to_pandas()
                yield RawChunk(empty, path.name, np.zeros(0))
                yielded = True


def read_image_cell(root: Path, cell: str) -> bytes | None:
    """The encoded image a product's `image_cell` (`<file relative to root>#<row>`) names, or None where
    the cell is malformed, the file is gone or lies outside `root` (symlinks resolved), or holds no image."""
    file, _, row = cell.rpartition("#")
    if not file or not row.isdigit() or int(row) < 1:
        return None
    try:
        parquet = pq.ParquetFile(contained_file(root / file, root))
        index = int(row) - 1
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if index < rows:
                column = parquet.read_row_group(group, columns=[IMAGE_COLUMN])[0]
                return _image_cells(column, np.array([index]))[0][0]
            index -= rows
    except (DataError, pa.ArrowException, OSError, KeyError) as exc:
        log.info("no image at %s in %s: %s", cell, root, exc)
    return None


def _image_cells(column, rows: np.ndarray) -> list[tuple[bytes | None, str | None]]:
    """`(bytes, path)` of the chosen rows of an HF Image struct column or a binary column."""
    taken = column.take(pa.array(rows))
    if pa.types.is_struct(taken.type):
        names = [taken.type.field(i).name for i in range(taken.type.num_fields)]
        data = pc.struct_field(taken, "bytes").to_pylist() if "bytes" in names else [None] * len(rows)
        paths = pc.struct_field(taken, "path").to_pylist() if "path" in names else [None] * len(rows)
        return list(zip(data, paths, strict=True))
    return [(value, None) for value in taken.to_pylist()]


def _candidate(
    source: str, row: int, product_id: str | None, title: str | None,
    image: tuple[bytes | None, str | None], corpus: int, file: str,
) -> Candidate:
    """`row`: 1-based within `source`, the file (`file`: its path relative to the dataset root)."""
    if not product_id:
        return Candidate(source, row, "", None, "malformed-row", "empty product_id")
    data, path = image
    cell = f"{file}#{row}" if data is not None else None
    product = Product(product_id, None if title is None else str(title), corpus, image_bytes=data, image_cell=cell)
    # an HF Image cell may point at a file instead of embedding it
    return Candidate(source, row, product_id, product, image_local=path if data is None and path else None)
