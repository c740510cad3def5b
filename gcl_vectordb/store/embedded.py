"""The embedded backend: the Qdrant engine in-process (qdrant-edge-py), one folder per collection.

Layout under the store root:  `<root>/<name>/collection.json` (the record), `<root>/<name>/shard/`
(the engine's shard) and `<root>/.locks/<name>.lock`. One process holds a collection at a time: the
lock (`gcl_vectordb.store.lock`) is taken before the shard is opened, created or dropped — the engine's
own check comes too late, after its first writes — and held until `close()`; a second process gets
`CollectionInUse` naming the holder. Every step that may allocate disk checks the free space first
(`gcl_vectordb.store.space`): the engine writes through memory maps and dies of SIGBUS on a full disk.
There is no background optimizer: `optimize()` builds the HNSW index after a bulk load (blocking).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from gcl_vectordb.errors import CollectionInUse, StoreError
from gcl_vectordb.files import out_of_space, write_json_atomic
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import plans, schema, space
from gcl_vectordb.store.base import StoreBase, collection_not_found, existing_record
from gcl_vectordb.store.bm25 import SparseVector
from gcl_vectordb.store.lock import Lock, lock_path
from gcl_vectordb.store.records import CollectionRecord, PointColumns, validate_collection_name

log = logging.getLogger(__name__)

RECORD_FILE = "collection.json"
SHARD_DIR = "shard"
WAL_DIR = "wal"  # read and appended, not mapped whole: no holes to fill on open


@dataclass(frozen=True)
class EmbeddedOptions:
    """Engine settings applied when a collection is created (None = the engine's default).

    Thresholds are in KB of vectors: below `indexing_threshold_kb` a segment stays a plain (exact)
    index, and a search whose filtered candidates are below `full_scan_threshold_kb` scans instead
    of walking the graph. Tests set both tiny to exercise HNSW on a few hundred points.
    """

    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    full_scan_threshold_kb: int | None = None
    indexing_threshold_kb: int | None = None
    batch_size: int = 1024

    def __post_init__(self) -> None:
        for name in ("hnsw_m", "hnsw_ef_construct", "full_scan_threshold_kb", "indexing_threshold_kb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise StoreError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 1:
            raise StoreError(f"batch_size must be positive, got {self.batch_size}")

    def hnsw(self) -> dict[str, int] | None:
        values = {"m": self.hnsw_m, "ef_construct": self.hnsw_ef_construct,
                  "full_scan_threshold_kb": self.full_scan_threshold_kb}
        given = {k: v for k, v in values.items() if v is not None}
        return given or None


class EmbeddedStore(StoreBase):
    """Collections as folders under `root`, searched in-process by the Qdrant engine."""

    thread_safe = True  # the engine locks internally: reads while another thread upserts (checked under load)

    def __init__(self, root: str | Path, options: EmbeddedOptions | None = None) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the store location {self.root} is not a directory",
                             "pass --qdrant a folder (created on first ingest) or an http(s):// URL")
        self.location = str(self.root)
        self.options = options or EmbeddedOptions()
        self.batch_size = self.options.batch_size
        self._shards: dict[str, edge.EdgeShard] = {}
        self._records: dict[str, CollectionRecord] = {}  # read under this store's lock only
        self._locks: dict[str, Lock] = {}

    def __repr__(self) -> str:
        return f"EmbeddedStore({self.location!r})"

    # ---- collections
    def create_collection(
        self, record: CollectionRecord, *, exist_ok: bool = False, shards: int = 1, replicas: int = 1,
        bulk_load: bool = False,
    ) -> CollectionRecord:
        """Create the collection folder, its shard (three cosine vectors, payload indexes) and record.

        `bulk_load` needs nothing here (the engine indexes only in `optimize()`).
        """
        if shards != 1 or replicas != 1:
            raise StoreError(
                "the embedded store holds one shard per collection without replicas",
                "use a Qdrant server (--qdrant http://HOST:6333) for shards and replicas",
            )
        self.hold(record.name, create=True)
        folder = self.root / record.name
        if (folder / RECORD_FILE).is_file():
            return existing_record(self.get_record(record.name), record, exist_ok, self.location)
        self._require_space(0, f"create collection {record.name}")
        config = schema.edge_config(record.dim, record.storage, self.options.hnsw(), self.options.indexing_threshold_kb,
                                    bm25=record.bm25 is not None)
        new_folder = not folder.exists()
        shard = None
        try:
            if (folder / SHARD_DIR).exists():  # a create that died before writing its record
                shutil.rmtree(folder / SHARD_DIR)
            folder.mkdir(parents=True, exist_ok=True)
            with self._engine(f"create collection {record.name}"):
                shard = edge.EdgeShard.create(str(folder / SHARD_DIR), config)
                for operation in schema.edge_payload_indexes():
                    shard.update(operation)
            self._save_record(record)
        except Exception as exc:  # OSError, OutOfSpace, or qdrant-edge's plain Exception
            _remove_partial(folder, shard, new_folder)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot create collection {record.name} in {self.location}: {exc}",
                             "check that the store folder is writable (--qdrant PATH)") from exc
        self._shards[record.name] = shard
        log.info("created collection %s in %s (dim %d, storage %s)", record.name, self.location, record.dim,
                 record.storage.name)
        return record

    def hold(self, name: str, *, create: bool = False) -> None:
        """Take collection `name` for this store's lifetime (`close()` lets go); `CollectionInUse` names
        the holder if another process — or another open store — has it. A collection that does not exist
        is `CollectionNotFound`, unless `create` (the caller is about to create it)."""
        validate_collection_name(name)
        if name in self._locks:
            return
        if not create and not (self.root / name / RECORD_FILE).is_file():
            raise collection_not_found(name, self.location, [r.name for r in self.list_collections()])
        self._locks[name] = Lock(lock_path(self.root, name), f"collection {name}").acquire()
        self._records.pop(name, None)  # read again, under the lock

    def in_use(self, name: str) -> CollectionInUse | None:
        """Why `name` cannot be held now (another holder), or None once this store holds it."""
        try:
            self.hold(name)
        except CollectionInUse as exc:
            return exc
        return None

    def get_record(self, name: str) -> CollectionRecord:
        if name in self._records:
            return self._records[name]
        validate_collection_name(name)
        path = self.root / name / RECORD_FILE
        if not path.is_file():
            raise collection_not_found(name, self.location, [r.name for r in self.list_collections()])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read {path}: {exc}", "drop the collection and ingest it again") from exc
        record = schema.record_from_json(data, str(path))
        if name in self._locks:  # nobody else can change it meanwhile
            self._records[name] = record
        return record

    def list_collections(self) -> list[CollectionRecord]:
        """Records of every collection under the root (no shard is opened, no lock taken: records are
        replaced atomically, so a reader sees the old or the new one)."""
        if not self.root.is_dir():
            return []
        names = sorted(p.parent.name for p in self.root.glob(f"*/{RECORD_FILE}"))
        return [self.get_record(name) for name in names]

    def drop(self, name: str) -> None:
        """Delete the collection folder; refuses while another process holds the collection. The lock
        stays held until `close()`, so a create in this store may follow."""
        self.hold(name)
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        self._records.pop(name, None)
        shutil.rmtree(self.root / name)
        log.info("dropped collection %s from %s", name, self.location)

    def optimize(self, name: str, *, progress: Progress = NULL_PROGRESS) -> None:
        """Build the HNSW index and merge segments (blocking; minutes at 100k products on 2 cores).

        The engine reports no progress, so `progress` shows one open-ended task while it works.
        """
        shard = self._shard(name)
        rewritten = self.count(name) * space.segment_bytes(self.get_record(name).dim)
        self._require_space(rewritten, f"build the search index of {name}")
        task = progress.task(f"building the search index of {name}", total=None, unit="step")
        started = time.perf_counter()
        try:
            with self._engine(f"build the search index of {name}"):
                changed = shard.optimize()
        finally:
            task.close()
        info = shard.info()
        log.info("optimized %s in %.1f s (changed: %s, %d segments, %d indexed vectors)", name,
                 time.perf_counter() - started, changed, info.segments_count, info.indexed_vectors_count)

    def flush(self, name: str) -> None:
        """Write the collection's segments to disk (blocking; ≈ 0.1 s).

        Upserts are already in the engine's write-ahead log when `upsert` returns, and a process killed
        afterwards (even by SIGKILL) finds them again on reopen (the log is replayed); `flush` makes them
        part of the segments, so that they also survive an OS crash and reopening replays less.
        """
        with self._engine(f"flush collection {name}"):
            self._shard(name).flush()

    def indexed_vectors(self, name: str) -> int:
        """How many vectors sit in HNSW indexes (0 until `optimize()` on a large enough collection)."""
        return self._shard(name).info().indexed_vectors_count

    def close(self) -> None:
        """Flush and close every shard, then let go of the collections (also after a failed flush)."""
        failure: BaseException | None = None
        for name, shard in list(self._shards.items()):
            del self._shards[name]
            try:
                with self._engine(f"flush collection {name}"):
                    shard.flush()
            except Exception as exc:  # close the rest all the same; the first failure is raised
                failure = failure or exc
            finally:
                shard.close()
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()
        self._records.clear()
        if failure is not None:
            raise failure

    # ---- data
    def count(self, name: str, *, corpus: int | None = None) -> int:
        conditions = [("corpus", corpus)] if corpus is not None else []
        return self._shard(name).count(edge.CountRequest(exact=True, filter=schema.edge_filter(conditions)))

    def _write(self, name: str, batches: Iterator[PointColumns]) -> None:
        self._write_prepared(name, (self._prepare_batch(batch) for batch in batches))

    def _prepare_batch(self, batch: PointColumns) -> list[edge.Point]:
        return schema.edge_points(schema.wire_rows(batch))

    def _write_prepared(self, name: str, batches: Iterable[list[edge.Point]]) -> None:
        """Every write checks the free space first (`store.space`): a full disk is `OutOfSpace`, not SIGBUS."""
        shard = self._shard(name)
        point_bytes = space.point_bytes(self.get_record(name).dim)
        for points in batches:
            what = f"write {len(points):,} points into collection {name}"
            self._require_space(len(points) * point_bytes, what)
            with self._engine(what):
                shard.update(edge.UpdateOperation.upsert_points(points))

    def _add_sparse_vector(self, name: str) -> None:
        self._shard(name).update(schema.edge_create_sparse_vector())

    def _scroll_titles(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, str | None]], Any]:
        records, following = self._shard(name).scroll(edge.ScrollRequest(
            offset=offset, limit=limit, with_payload=edge.PayloadSelector.Include(["title"]), with_vector=False))
        return [(str(r.id), (r.payload or {}).get("title")) for r in records], following

    def _write_sparse(self, name: str, updates: list[tuple[str, SparseVector]]) -> None:
        shard = self._shard(name)
        what = f"write {len(updates):,} BM25 vectors into collection {name}"
        self._require_space(len(updates) * space.point_bytes(0), what)  # a point without dense vectors
        with self._engine(what):
            shard.update(schema.edge_sparse_updates(updates))

    def _save_record(self, record: CollectionRecord) -> None:
        """Write the record atomically, holding the collection."""
        self.hold(record.name, create=True)
        try:
            write_json_atomic(self.root / record.name / RECORD_FILE, schema.record_to_json(record))
        except OSError as exc:
            raise out_of_space(exc, self.root, f"save the record of {record.name}") or StoreError(
                f"cannot write the record of collection {record.name}: {exc}",
                "check that the store folder is writable (--qdrant PATH)") from exc
        self._records[record.name] = record

    def _query(self, name: str, query_plans: Sequence[plans.QueryPlan]) -> list[list[Any]]:
        shard = self._shard(name)
        requests = [schema.edge_request(plan) for plan in query_plans]
        if len(requests) == 1:
            return [shard.query(requests[0])]
        return shard.query_batch(edge.QueryBatchRequest(requests))

    def _retrieve_wire(self, name: str, ids: list[str], with_payload: bool, with_vectors: bool) -> list[Any]:
        return self._shard(name).retrieve(ids, with_payload=with_payload, with_vector=with_vectors)

    def _shard(self, name: str) -> edge.EdgeShard:
        if name in self._shards:
            return self._shards[name]
        self.hold(name)
        self.get_record(name)
        path = self.root / name / SHARD_DIR
        holes = space.unallocated_bytes(path, skip=(WAL_DIR,)) if self._allocating_on_touch() else 0
        self._require_space(holes, f"open collection {name}")
        try:
            with self._engine(f"open collection {name}"):
                shard = edge.EdgeShard.load(str(path))
        except StoreError:
            raise
        except Exception as exc:  # qdrant-edge raises plain Exception; the message tells the cause
            if "WouldBlock" in str(exc):  # another program (not gcl-vdb) holds the shard
                raise CollectionInUse(f"collection {name} is in use by another process",
                                      "wait for it to finish or stop it, then run the command again") from None
            raise StoreError(f"cannot open collection {name} at {path}: {exc}",
                             "drop the collection and ingest it again") from exc
        self._shards[name] = shard
        return shard

    # ---- disk space
    def _allocating_on_touch(self) -> bool:
        return space.allocating_on_touch(self.root.absolute()) is not None

    def _require_space(self, needed: int, what: str) -> None:
        """Refuse a step the disk has no room for: `needed` bytes plus the headroom (`store.space`)."""
        space.require_space(self.root, space.HEADROOM + needed, what)

    @contextlib.contextmanager
    def _engine(self, what: str) -> Iterator[None]:
        """An engine call: its out-of-space failures become `OutOfSpace` (one line, what to do)."""
        try:
            yield
        except Exception as exc:
            full = out_of_space(exc, self.root, what)
            if full is not None:
                raise full from exc
            raise


def _remove_partial(folder: Path, shard: edge.EdgeShard | None, new_folder: bool) -> None:
    """Undo a create that failed half-way: nothing of the collection stays behind."""
    if shard is not None:
        shard.close()
    target = folder if new_folder else folder / SHARD_DIR
    shutil.rmtree(target, ignore_errors=True)
