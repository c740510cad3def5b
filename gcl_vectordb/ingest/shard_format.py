"""Embedding shards on disk: what `gcl-vdb embed` writes and `gcl-vdb ingest --embeddings` loads.

docs/architecture.md ("Embedding shards") describes the format; in short:

    DIR/manifest.json                         every shard complete: the header and all part files
    DIR/shard-00002-of-00004/shard.json       this shard's header; `complete` and its files once done
    DIR/shard-00002-of-00004/state.json       resume cursor per corpus (gcl_vectordb.ingest.state)
    DIR/shard-00002-of-00004/rejects.jsonl    products rejected while embedding
    DIR/shard-00002-of-00004/c1-0000000000-0000016384.parquet   a part: corpus 1, cursor 0 → 16384

A part holds the rows of one corpus: `product_id`, `corpus`, `title`, `image` (path relative to the images
folder, or null), `extra` (other corpus fields as JSON, or null), `has_image`, `has_title` (presence of the
field vectors) and `vector_image`, `vector_title`, `vector_fused` (fixed-size lists of `dim` non-null
float32, or float16); only `title` (a product without one), `image` and `extra` may be null. Every file is written to a temporary name,
fsynced and renamed (`gcl_vectordb.files`). The header (`ShardHeader`) names the model's identity, the
field weights of `fused`, the vector dtype, the number of shards and the dataset; all shards of one folder
share it, and a collection refuses shards of another model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gcl_vectordb.data.records import Partition
from gcl_vectordb.domain import FieldWeights, ModelIdentity
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.files import write_json_atomic
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store.records import VECTOR_NAMES, utc_now_iso

SHARD_FORMAT = 1
MANIFEST_FILE = "manifest.json"
SHARD_FILE = "shard.json"
STATE_FILE = "state.json"
REJECTS_FILE = "rejects.jsonl"
DTYPES = ("float32", "float16")
VECTOR_COLUMNS: dict[str, str] = {name: f"vector_{name}" for name in VECTOR_NAMES}
PRESENCE_COLUMNS: dict[str, str] = {"image": "has_image", "title": "has_title"}
PAYLOAD_COLUMNS: tuple[str, ...] = ("product_id", "corpus", "title", "image", "extra")
_SHARD_DIR = re.compile(r"^shard-(\d{5})-of-(\d{5})$")
_PART = re.compile(r"^c(\d)-(\d{10})-(\d{10})\.parquet$")
_HASH_CHUNK = 8 << 20
HINT_EMBED = "re-create it with `gcl-vdb embed`"


def shard_dir_name(partition: Partition) -> str:
    return f"shard-{partition.index:05d}-of-{partition.count:05d}"


def part_name(corpus: int, start: int, end: int) -> str:
    """`c1-0000000000-0000016384.parquet`: corpus 1, the corpus cursor before and after the part."""
    return f"c{corpus}-{start:010d}-{end:010d}.parquet"


def parse_part_name(name: str) -> tuple[int, int, int] | None:
    """(corpus, start, end) of a part file name, None for any other name."""
    match = _PART.match(name)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def vector_type(dim: int, dtype: str) -> pa.DataType:
    """A vector column's type: a fixed-size list of `dim` non-null float32 (or float16) values. Required
    values need no definition levels in parquet, which halves the time to read them."""
    value = pa.float16() if dtype == "float16" else pa.float32()
    return pa.list_(pa.field("element", value, nullable=False), dim)


def part_schema(dim: int, dtype: str) -> pa.Schema:
    """The columns of every part file (see the module docstring); only `title`, `image` and `extra` may be
    null (shards written before titles could be null have a required `title`: the same type)."""
    required = [("product_id", pa.string()), ("corpus", pa.int8())]
    return pa.schema([
        *[pa.field(name, kind, nullable=False) for name, kind in required],
        ("title", pa.string()), ("image", pa.string()), ("extra", pa.string()),
        pa.field("has_image", pa.bool_(), nullable=False), pa.field("has_title", pa.bool_(), nullable=False),
        *[pa.field(column, vector_type(dim, dtype), nullable=False) for column in VECTOR_COLUMNS.values()],
    ])


@dataclass(frozen=True)
class ShardHeader:
    """What every shard of one embeddings folder agrees on: the model, the fused vector's field weights,
    the stored dtype, the number of shards, and the dataset (root, layout, images folder)."""

    model: ModelIdentity
    field_weights: FieldWeights
    dtype: str
    shards: int
    dataset: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown vector dtype {self.dtype!r}", f"use {' or '.join(DTYPES)}")
        if self.shards < 1:
            raise ConfigError(f"the number of shards must be ≥ 1, got {self.shards}")

    @property
    def dim(self) -> int:
        return self.model.dim

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "field_weights": self.field_weights.as_dict(), "dtype": self.dtype,
                "shards": self.shards, "dataset": dict(self.dataset)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Path) -> ShardHeader:
        try:
            return cls(model=ModelIdentity.from_dict(data["model"]),
                       field_weights=FieldWeights.from_mapping(data["field_weights"]), dtype=str(data["dtype"]),
                       shards=int(data["shards"]), dataset={k: str(v) for k, v in dict(data["dataset"]).items()})
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise DataError(f"{where} is not a gcl-vdb embeddings header ({exc})", HINT_EMBED) from None

    def differences(self, other: ShardHeader) -> list[str]:
        """What differs between two headers, in words (empty: the same embedding job)."""
        found = []
        if not self.model.same_model(other.model):
            found.append(f"model {other.model.short()} instead of {self.model.short()}")
        for name in ("field_weights", "dtype", "shards"):
            if getattr(self, name) != getattr(other, name):
                found.append(f"{name} {getattr(other, name)} instead of {getattr(self, name)}")
        for key in ("root", "corpora"):
            if self.dataset.get(key) != other.dataset.get(key):
                found.append(f"dataset {key} {other.dataset.get(key)} instead of {self.dataset.get(key)}")
        return found


@dataclass(frozen=True)
class PartFile:
    """One part file: its path relative to the embeddings folder, corpus, rows, size and sha256."""

    path: str
    corpus: int
    rows: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "corpus": self.corpus, "rows": self.rows, "bytes": self.bytes,
                "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PartFile:
        return cls(str(data["path"]), int(data["corpus"]), int(data["rows"]), int(data["bytes"]),
                   str(data["sha256"]))


@dataclass(frozen=True)
class ShardRecord:
    """`shard.json`: a shard's header and partition, when it started, and once complete its part files."""

    header: ShardHeader
    partition: Partition
    created_at: str = field(default_factory=utc_now_iso)
    complete: bool = False
    files: tuple[PartFile, ...] = ()

    def save(self, folder: Path) -> None:
        write_json_atomic(folder / SHARD_FILE, {
            "format": SHARD_FORMAT, **self.header.to_json(), "shard": self.partition.index,
            "created_at": self.created_at, "complete": self.complete, "files": [f.to_json() for f in self.files],
        })

    @classmethod
    def load(cls, folder: Path) -> ShardRecord | None:
        """The record in `folder`, None if there is none; DataError if it is unreadable."""
        path = folder / SHARD_FILE
        if not path.is_file():
            return None
        data = _read_json(path)
        header = ShardHeader.from_json(data, path)
        try:
            return cls(header, Partition(int(data["shard"]), header.shards), str(data["created_at"]),
                       bool(data["complete"]), tuple(PartFile.from_json(f) for f in data["files"]))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise DataError(f"{path} is malformed ({exc})", HINT_EMBED) from None

    def completed(self, files: Sequence[PartFile]) -> ShardRecord:
        return replace(self, complete=True, files=tuple(files))


@dataclass(frozen=True)
class Manifest:
    """A complete embeddings folder: the shared header and every part file, corpus 1's before corpus 2's
    (each corpus in shard order, each shard in cursor order) — the order `ingest --embeddings` loads."""

    root: Path
    header: ShardHeader
    files: tuple[PartFile, ...]

    def corpora(self) -> tuple[int, ...]:
        return tuple(sorted({f.corpus for f in self.files}))

    def rows(self, corpus: int) -> int:
        return sum(f.rows for f in self.files if f.corpus == corpus)

    def fingerprint(self) -> list[list[Any]]:
        """[path, rows, sha256] of every part: what the resume state of a load is tied to."""
        return [[f.path, f.rows, f.sha256] for f in self.files]

    def to_json(self) -> dict[str, Any]:
        return {"format": SHARD_FORMAT, **self.header.to_json(), "files": [f.to_json() for f in self.files]}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", HINT_EMBED) from None
    if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
        raise DataError(f"{path} is not a gcl-vdb embeddings file of format {SHARD_FORMAT}", HINT_EMBED)
    return data


def shard_folders(root: Path) -> dict[Partition, Path]:
    """The shard folders under `root`, by partition (any number of shards)."""
    found = {}
    for path in sorted(root.glob("shard-*-of-*")):
        match = _SHARD_DIR.match(path.name)
        if match and path.is_dir():
            found[Partition(int(match[1]), int(match[2]))] = path
    return found


def sorted_files(files: Sequence[PartFile]) -> tuple[PartFile, ...]:
    """Load order: corpus, then shard folder, then cursor (the part name sorts by cursor)."""
    return tuple(sorted(files, key=lambda f: (f.corpus, f.path)))


def assemble_manifest(root: Path) -> tuple[Manifest | None, list[int]]:
    """The manifest of `root` from its shard records, and the shards still missing or incomplete.

    Refuses (DataError) a folder whose shards disagree on the header (another model, other field weights,
    another number of shards) — one folder holds one embedding job."""
    records = {p: ShardRecord.load(folder) for p, folder in shard_folders(root).items()}
    records = {p: r for p, r in records.items() if r is not None}
    if not records:
        return None, []
    first = next(iter(records.values()))
    for partition, record in records.items():
        if differences := first.header.differences(record.header):
            raise DataError(f"{root} mixes embeddings: shard {partition} has {'; '.join(differences)}",
                            "keep one embedding job per folder (another --out for another model)")
    wanted = first.header.shards
    missing = [i for i in range(wanted) if not (r := records.get(Partition(i, wanted))) or not r.complete]
    if missing:
        return None, missing
    files = [f for record in records.values() for f in record.files]
    return Manifest(root, first.header, sorted_files(files)), []


def write_manifest(manifest: Manifest) -> Path:
    return write_json_atomic(manifest.root / MANIFEST_FILE, manifest.to_json())


def read_manifest(root: Path) -> Manifest:
    """The manifest of an embeddings folder: `manifest.json`, else assembled from complete shard records
    (shard folders copied together from several machines). DataError if the folder is not complete."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"embeddings folder {root} does not exist", "create it with `gcl-vdb embed --out DIR`")
    path = root / MANIFEST_FILE
    if path.is_file():
        data = _read_json(path)
        header = ShardHeader.from_json(data, path)
        try:
            files = sorted_files([PartFile.from_json(f) for f in data["files"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path} is malformed ({exc})", HINT_EMBED) from None
        return Manifest(root, header, files)
    manifest, missing = assemble_manifest(root)
    if manifest is not None:
        return manifest
    if not missing:
        raise DataError(f"{root} holds no embeddings (no manifest.json, no shard folders)",
                        "create them with `gcl-vdb embed --out DIR`")
    count = next(iter(shard_folders(root))).count
    raise DataError(f"{root} is not complete: {len(missing)} of {count} shards are not finished "
                    f"({', '.join(f'{i}/{count}' for i in missing[:8])}{' …' if len(missing) > 8 else ''})",
                    f"finish each with `gcl-vdb embed --out {root} --shard I/{count}` (same model and data)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)  # hashlib releases the GIL on large buffers: threads hash in parallel
    return digest.hexdigest()


def verify_manifest(manifest: Manifest, *, threads: int = 2, progress: Progress = NULL_PROGRESS) -> None:
    """Check every part before anything is loaded: present, the recorded size and sha256, readable parquet
    with the recorded rows and every column of the format (vectors of the header's dim and dtype).

    One DataError names the first bad file; nothing is read into a collection until this passes."""
    task = progress.task(f"verifying {len(manifest.files)} embedding files", total=sum(f.bytes for f in manifest.files),
                         unit="B")
    expected = part_schema(manifest.header.dim, manifest.header.dtype)

    def check(part: PartFile) -> None:
        path = manifest.root / part.path
        try:
            size = path.stat().st_size
        except OSError:
            raise DataError(f"embedding file {part.path} is missing from {manifest.root}", HINT_EMBED) from None
        if size != part.bytes:
            raise DataError(f"embedding file {part.path} is truncated or changed ({size:,} bytes, the manifest "
                            f"says {part.bytes:,})", HINT_EMBED)
        if file_sha256(path) != part.sha256:
            raise DataError(f"embedding file {part.path} is corrupt (its sha256 differs from the manifest)",
                            HINT_EMBED)
        check_part_schema(path, part, expected)
        task.advance(part.bytes)

    try:
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            for _ in pool.map(check, manifest.files):
                pass
    finally:
        task.close()


def check_part_schema(path: Path, part: PartFile, expected: pa.Schema) -> None:
    """DataError unless `path` is readable parquet with `part.rows` rows and the columns of `expected`."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"embedding file {part.path} is not readable parquet ({exc})", HINT_EMBED) from None
    schema = parquet.schema_arrow
    missing = [name for name in expected.names if name not in schema.names]
    if missing:
        raise DataError(f"embedding file {part.path} lacks the column(s) {', '.join(missing)}", HINT_EMBED)
    wrong = [f"{name} is {schema.field(name).type}, not {expected.field(name).type}" for name in expected.names
             if not schema.field(name).type.equals(expected.field(name).type)]
    if wrong:
        raise DataError(f"embedding file {part.path}: {'; '.join(wrong)}", HINT_EMBED)
    if parquet.metadata.num_rows != part.rows:
        raise DataError(f"embedding file {part.path} has {parquet.metadata.num_rows:,} rows, the manifest says "
                        f"{part.rows:,}", HINT_EMBED)
