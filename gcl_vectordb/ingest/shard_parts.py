"""Part files of embedding shards: `PartsSink` writes them (`embed`), `ShardSource` reads them (`ingest
--embeddings`). The format is in `gcl_vectordb.ingest.shard_format`.

Writing: the finished batches of a corpus are buffered and written as one part when the sink is due
(`part_rows` rows) or at a checkpoint, atomically, before the cursor moves; so after a crash the parts on
disk are exactly those the saved cursor covers, plus perhaps one the cursor does not cover yet, which
`remove_uncovered_parts` deletes before the shard resumes.

Reading: row groups stream file by file (corpus 1's files, then corpus 2's) in batches of the ingest's
batch size; the vectors become numpy arrays without a per-row Python loop, so memory stays at a few
batches whatever the number of shards.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gcl_vectordb.data.records import RejectLog
from gcl_vectordb.files import atomic_output
from gcl_vectordb.ingest.pipeline import EncodedBatch, ReadBatch, SourceBatch
from gcl_vectordb.ingest.shard_format import (
    PRESENCE_COLUMNS,
    REJECTS_FILE,
    VECTOR_COLUMNS,
    Manifest,
    PartFile,
    ShardHeader,
    file_sha256,
    parse_part_name,
    part_name,
    part_schema,
    shard_folders,
    vector_type,
)
from gcl_vectordb.ingest.state import IngestState
from gcl_vectordb.store import product_payload
from gcl_vectordb.store.records import IngestProgress

log = logging.getLogger(__name__)
ROW_GROUP_ROWS = 4096
_PAYLOAD_KEYS = frozenset(("product_id", "title", "image", "corpus"))
# vectors do not compress (and zstd would cost the loader CPU); the text columns do
_COMPRESSION = {**dict.fromkeys(("product_id", "corpus", "title", "image", "extra", "has_image", "has_title"), "zstd"),
                **dict.fromkeys(VECTOR_COLUMNS.values(), "none")}


class PartsSink:
    """Writes finished batches of one shard into part files in `folder` (see the module docstring)."""

    stage = "write"

    def __init__(self, folder: Path, header: ShardHeader, starts: dict[int, int], part_rows: int) -> None:
        """`starts`: the saved cursor of each corpus (where its next part begins)."""
        self.folder, self.header, self.part_rows = folder, header, part_rows
        self.schema = part_schema(header.dim, header.dtype)
        self._starts = dict(starts)
        self._buffer: list[EncodedBatch] = []
        self._rows = 0

    def stored(self, corpus: int, product_ids: list[str]) -> tuple[set[str], dict[str, Any]]:
        return set(), {}  # a shard's products are unique: the cursor alone says what is done

    def prepare(self, batch: EncodedBatch) -> None:
        return None

    def write(self, batch: EncodedBatch, prepared: None) -> None:
        if self._buffer and self._buffer[0].source.corpus != batch.source.corpus:
            self.flush()  # a part holds one corpus (the pipeline checkpoints at a corpus's end anyway)
        self._buffer.append(batch)
        self._rows += len(batch.product_ids)

    def due(self) -> bool:
        return self._rows >= self.part_rows

    def flush(self) -> None:
        if not self._buffer:
            return
        corpus = self._buffer[0].source.corpus
        start = self._starts[corpus]
        end = max(start, self._buffer[-1].source.end)  # a batch of retried products ends before the cursor
        table = self._table(self._buffer)
        with atomic_output(self.folder / part_name(corpus, start, end)) as handle:
            pq.write_table(table, handle, row_group_size=ROW_GROUP_ROWS, compression=_COMPRESSION,
                           use_dictionary=["corpus"], write_statistics=False)
        self._starts[corpus] = end
        self._buffer, self._rows = [], 0

    def saved(self, progress: IngestProgress) -> None:
        return None  # the shard's own state file is its progress

    def _table(self, batches: list[EncodedBatch]) -> pa.Table:
        payloads = [p for b in batches for p in b.payloads]
        columns: dict[str, Any] = {
            "product_id": [i for b in batches for i in b.product_ids],
            "corpus": [p["corpus"] for p in payloads],
            "title": [p["title"] for p in payloads],
            "image": [p["image"] for p in payloads],
            "extra": [_extra_json(p) for p in payloads],
        }
        for name, column in PRESENCE_COLUMNS.items():
            columns[column] = np.concatenate([b.present[name] for b in batches])
        kind = vector_type(self.header.dim, self.header.dtype)
        for name, column in VECTOR_COLUMNS.items():
            array = np.concatenate([b.vectors[name] for b in batches]).astype(kind.value_type.to_pandas_dtype())
            columns[column] = pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), type=kind)
        return pa.table(columns, schema=self.schema)


def _extra_json(payload: dict[str, Any]) -> str | None:
    extra = {k: v for k, v in payload.items() if k not in _PAYLOAD_KEYS}
    return json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None


def remove_uncovered_parts(folder: Path, state: IngestState) -> int:
    """Delete part files the saved cursor does not cover (written just before a crash) and temporary files
    of interrupted writes; returns how many files went."""
    removed = 0
    for path in folder.iterdir():
        parsed = parse_part_name(path.name)
        stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
        uncovered = parsed is not None and parsed[2] > state.cursor(parsed[0]).done
        if stale_tmp or uncovered:
            path.unlink()
            removed += 1
    if removed:
        log.info("removed %d uncovered or temporary part files in %s", removed, folder)
    return removed


def list_parts(folder: Path, root: Path) -> list[PartFile]:
    """The part files of a finished shard with their rows, size and sha256 (paths relative to `root`)."""
    parts = []
    for path in sorted(folder.iterdir()):
        parsed = parse_part_name(path.name)
        if parsed is None:
            continue
        parts.append(PartFile(str(path.relative_to(root)), parsed[0], pq.ParquetFile(path).metadata.num_rows,
                              path.stat().st_size, file_sha256(path)))
    return parts


@dataclass(frozen=True)
class EmbeddedRows:
    """Rows of a part file (the `Rows` of `ShardSource`): an Arrow record batch."""

    batch: pa.RecordBatch

    @property
    def product_ids(self) -> list[str]:
        return self.batch.column("product_id").to_pylist()

    def take(self, positions: Sequence[int]) -> EmbeddedRows:
        if len(positions) == self.batch.num_rows:
            return self
        return EmbeddedRows(self.batch.take(pa.array(positions, type=pa.int64())))

    def __len__(self) -> int:
        return self.batch.num_rows


class ShardSource:
    """The rows of a verified `Manifest`, corpus by corpus, in batches of `batch_size`."""

    encodes = False

    def __init__(self, manifest: Manifest, batch_size: int) -> None:
        self.manifest, self.batch_size = manifest, batch_size
        self.seconds = {"convert": 0.0}

    def total(self, corpus: int) -> int:
        return self.manifest.rows(corpus)

    def read(self, corpus: int, start: int, rejects: RejectLog, retry: frozenset[str]) -> Iterator[SourceBatch]:
        """The rows after the first `start`; `retry` is empty here (the shards hold no rejected product)."""
        self._embed_rejects(corpus, rejects)
        skip, end = start, start
        for part in (f for f in self.manifest.files if f.corpus == corpus):
            if skip >= part.rows:
                skip -= part.rows
                continue
            for rows in self._read_part(self.manifest.root / part.path, skip):
                end += len(rows)
                yield SourceBatch(rows, end, False)
            skip = 0
        yield SourceBatch(None, max(end, start), True)

    def _read_part(self, path: Path, skip: int) -> Iterator[EmbeddedRows]:
        parquet = pq.ParquetFile(path)
        groups = []
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if skip >= rows:
                skip -= rows
            else:
                groups.append(group)
        for batch in parquet.iter_batches(batch_size=self.batch_size, row_groups=groups):
            if skip:
                batch, skip = batch.slice(skip), 0
            if batch.num_rows:
                yield EmbeddedRows(batch)

    def _embed_rejects(self, corpus: int, rejects: RejectLog) -> None:
        """The products rejected while embedding this corpus (each shard's rejects file), reported once
        per read; the ingest's rejects file skips those it already holds."""
        for partition, folder in shard_folders(self.manifest.root).items():
            path = folder / REJECTS_FILE
            if partition.count != self.manifest.header.shards or not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("corpus") == corpus:
                    rejects.add(entry["source"], entry["row"], entry["reason"], entry.get("detail", ""),
                                entry.get("product_id"))

    def start(self, corpus: int, rows: EmbeddedRows) -> None:
        return None

    def finish(self, batch: ReadBatch) -> EncodedBatch:
        assert isinstance(batch.rows, EmbeddedRows)
        started = time.perf_counter()
        encoded = embedded_batch(batch, batch.rows.batch, self.manifest.header.dim)
        self.seconds["convert"] += time.perf_counter() - started
        return encoded


def embedded_batch(source: ReadBatch, rows: pa.RecordBatch, dim: int) -> EncodedBatch:
    """A part file's rows as points: vectors `(n, dim)` float32, presence masks, payloads."""
    n = rows.num_rows
    vectors = {name: _vectors(rows.column(column), n, dim) for name, column in VECTOR_COLUMNS.items()}
    present = {name: np.array(rows.column(column).to_pylist(), dtype=bool) for name, column in PRESENCE_COLUMNS.items()}
    present["fused"] = np.ones(n, dtype=bool)
    ids = rows.column("product_id").to_pylist()
    payloads = [
        product_payload(pid, title, image, corpus, json.loads(extra) if extra else None)
        for pid, title, image, corpus, extra in zip(
            ids, rows.column("title").to_pylist(), rows.column("image").to_pylist(),
            rows.column("corpus").to_pylist(), rows.column("extra").to_pylist(), strict=True)
    ]
    return EncodedBatch(source, ids, vectors, present, payloads, list(source.rejects))


def _vectors(column: pa.Array, n: int, dim: int) -> np.ndarray:
    """A fixed-size-list column of non-null values → `(n, dim)` float32: a view of the Arrow buffer where it
    is float32. Read from the buffer, not with `to_numpy`, whose first call imports pandas (0.7 s)."""
    values = column.flatten()  # the n × dim values of this (maybe sliced) column
    width = values.type.bit_width // 8
    data = np.frombuffer(values.buffers()[1], dtype=np.float16 if width == 2 else np.float32, count=len(values),
                         offset=values.offset * width)
    return np.asarray(data, dtype=np.float32).reshape(n, dim)
