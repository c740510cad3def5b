"""The `VectorStore` protocol and the logic both backends share (validation, batching, search modes).

A backend supplies a handful of primitives (`_write`, `_query`, `_retrieve_wire` plus collection
management); everything that decides *what* is written or searched lives here once, so the embedded
engine and a Qdrant server give the same answers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gcl_vectordb.domain import SearchMode
from gcl_vectordb.errors import CollectionInUse, CollectionNotFound, ConfigError, ModelMismatch, StoreError
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import plans
from gcl_vectordb.store.bm25 import Bm25Settings, SparseVector, bm25_document_vectors, bm25_query_vector
from gcl_vectordb.store.records import (
    VECTOR_NAMES,
    CollectionRecord,
    Hit,
    PointColumns,
    PointRecord,
    SearchRequest,
    check_filter_keys,
)
from gcl_vectordb.store.schema import hits_from_wire, point_from_wire, point_id

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PreparedUpsert:
    """The batches of one `prepare_upsert` call, checked, with their BM25 vectors, in the form the backend
    writes (the embedded engine's point objects; `PointColumns` for a server)."""

    collection: str
    count: int
    batches: list[Any]


@runtime_checkable
class VectorStore(Protocol):
    """A Qdrant store holding gcl-vdb collections (named vectors image / title / fused + payload)."""

    location: str
    thread_safe: bool

    def create_collection(
        self, record: CollectionRecord, *, exist_ok: bool = False, shards: int = 1, replicas: int = 1,
        bulk_load: bool = False,
    ) -> CollectionRecord: ...

    def hold(self, name: str, *, create: bool = False) -> None:
        """Take the collection for this store's lifetime, before anything of it is read or written (embedded:
        an exclusive lock, `CollectionInUse` naming the holder; server: nothing, the server serialises)."""
        ...

    def in_use(self, name: str) -> CollectionInUse | None:
        """Why the collection cannot be held now, or None (then this store holds it)."""
        ...

    def update_record(self, record: CollectionRecord) -> None:
        """Replace an existing collection's record by `record` (same name, dim and creation): how ingest
        saves its progress, and records the model identity of a collection created before there was one."""
        ...

    def get_record(self, name: str) -> CollectionRecord: ...

    def list_collections(self) -> list[CollectionRecord]: ...

    def upsert(self, name: str, points: Sequence[PointRecord]) -> int: ...

    def upsert_arrays(
        self, name: str, product_ids: Sequence[str], vectors: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray] | None, payloads: Sequence[Mapping[str, Any]],
    ) -> int: ...

    def prepare_upsert(
        self, name: str, product_ids: Sequence[str], vectors: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray] | None, payloads: Sequence[Mapping[str, Any]],
    ) -> PreparedUpsert: ...

    def write_prepared(self, prepared: PreparedUpsert) -> int: ...

    def count(self, name: str, *, corpus: int | None = None) -> int: ...

    def retrieve(self, name: str, product_ids: Sequence[str], *, with_vectors: bool = False) -> list[PointRecord]: ...

    def existing_ids(self, name: str, product_ids: Sequence[str]) -> set[str]: ...

    def search(self, name: str, request: SearchRequest) -> list[Hit]: ...

    def search_batch(self, name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]: ...

    def add_bm25(
        self, name: str, settings: Bm25Settings | None = None, *, progress: Progress = NULL_PROGRESS
    ) -> CollectionRecord: ...

    def flush(self, name: str) -> None: ...

    def optimize(self, name: str, *, progress: Progress = NULL_PROGRESS) -> None: ...

    def drop(self, name: str) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> VectorStore: ...

    def __exit__(self, *exc: object) -> None: ...


class StoreBase:
    """Shared implementation; subclasses provide the backend primitives below."""

    location: str
    batch_size: int = 1024

    # ---- backend primitives
    def hold(self, name: str, *, create: bool = False) -> None:
        raise NotImplementedError

    def get_record(self, name: str) -> CollectionRecord:
        raise NotImplementedError

    thread_safe: bool = False
    """Whether one thread may read (retrieve, count) while another writes, without a lock of the caller's."""

    def _write(self, name: str, batches: Iterator[PointColumns]) -> None:
        """Write every batch (at most `batch_size` products each) before returning."""
        raise NotImplementedError

    def _prepare_batch(self, batch: PointColumns) -> Any:
        """A batch in the form `_write_prepared` takes; by default the batch itself."""
        return batch

    def _write_prepared(self, name: str, batches: Iterable[Any]) -> None:
        """Write batches made by `_prepare_batch` (with the checks `_write` makes); by default through `_write`."""
        self._write(name, iter(batches))

    def _add_sparse_vector(self, name: str) -> None:
        """Create the `bm25` sparse vector on an existing collection (a no-op where it exists)."""
        raise NotImplementedError

    def _scroll_titles(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, str | None]], Any]:
        """One page of (point id, title) pairs from `offset` (None: the start), and the next offset
        (None after the last page)."""
        raise NotImplementedError

    def _write_sparse(self, name: str, updates: list[tuple[str, SparseVector]]) -> None:
        """Set the `bm25` vector of existing points."""
        raise NotImplementedError

    def _save_record(self, record: CollectionRecord) -> None:
        """Replace the stored record of an existing collection."""
        raise NotImplementedError

    def _query(self, name: str, query_plans: Sequence[plans.QueryPlan]) -> list[list[Any]]:
        raise NotImplementedError

    def _retrieve_wire(self, name: str, ids: list[str], with_payload: bool, with_vectors: bool) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- writing
    def upsert(self, name: str, points: Sequence[PointRecord]) -> int:
        """Insert or replace products (idempotent: a product id always maps to the same point)."""
        if not points:
            return 0
        dim = self.get_record(name).dim
        vectors, present = {}, {}
        for vector_name in VECTOR_NAMES:
            mask = np.array([vector_name in p.vectors for p in points])
            array = np.zeros((len(points), dim), dtype=np.float32)
            for row in np.flatnonzero(mask):
                array[row] = _sized(points[row].vectors[vector_name], dim, name, points[row].product_id)
            vectors[vector_name], present[vector_name] = array, mask
        return self.upsert_arrays(
            name, [p.product_id for p in points], vectors, present, [p.payload for p in points]
        )

    def upsert_arrays(
        self, name: str, product_ids: Sequence[str], vectors: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray] | None, payloads: Sequence[Mapping[str, Any]],
    ) -> int:
        """Columnar upsert, the ingest hot path: `vectors[name]` `(n, dim)`, `present[name]` `(n,)` bool.

        `present=None` means every vector is present. `fused` must be present for every product.
        Returns the number of points written. A collection with BM25 also gets each title's sparse
        vector (`bm25_document_vectors` of the payload's `title`), whoever writes the points.
        """
        record = self.get_record(name)
        n = len(product_ids)
        present = present or {key: np.ones(n, dtype=bool) for key in vectors}
        _check_columns(record, n, vectors, present, payloads)
        columns = PointColumns(product_ids, vectors, {k: present[k] for k in vectors}, payloads)
        self._write(name, (_with_bm25(batch, record.bm25) for batch in columns.batches(self.batch_size)))
        log.debug("upserted %d points into %s", n, name)
        return n

    def prepare_upsert(
        self, name: str, product_ids: Sequence[str], vectors: Mapping[str, np.ndarray],
        present: Mapping[str, np.ndarray] | None, payloads: Sequence[Mapping[str, Any]],
    ) -> PreparedUpsert:
        """The first half of `upsert_arrays`: checked batches with their BM25 vectors, converted to what the
        backend writes; `write_prepared` writes them.

        The halves exist so that one thread can convert while another writes: on the embedded engine the
        conversion (vectors to Python lists, then the engine's point objects) holds the GIL and its write
        does not, so a load from embedding shards overlaps the two (`gcl_vectordb.ingest.store_sink`).
        """
        record = self.get_record(name)
        n = len(product_ids)
        present = present or {key: np.ones(n, dtype=bool) for key in vectors}
        _check_columns(record, n, vectors, present, payloads)
        columns = PointColumns(product_ids, vectors, {k: present[k] for k in vectors}, payloads)
        return PreparedUpsert(name, n, [self._prepare_batch(_with_bm25(batch, record.bm25))
                                        for batch in columns.batches(self.batch_size)])

    def write_prepared(self, prepared: PreparedUpsert) -> int:
        """The second half of `upsert_arrays` (see `prepare_upsert`); returns the number of points written."""
        self._write_prepared(prepared.collection, prepared.batches)
        log.debug("upserted %d points into %s", prepared.count, prepared.collection)
        return prepared.count

    # ---- reading
    def retrieve(self, name: str, product_ids: Sequence[str], *, with_vectors: bool = False) -> list[PointRecord]:
        """The stored products among `product_ids`, in the order asked; missing ids are simply absent."""
        self.get_record(name)
        records = self._retrieve_wire(name, [point_id(p) for p in product_ids], True, with_vectors)
        found = {r.product_id: r for r in map(point_from_wire, records)}
        return [found[p] for p in product_ids if p in found]

    def existing_ids(self, name: str, product_ids: Sequence[str]) -> set[str]:
        """Which of `product_ids` are stored (no payload or vectors are read)."""
        self.get_record(name)
        by_point = {point_id(p): p for p in product_ids}
        records = self._retrieve_wire(name, list(by_point), False, False)
        return {by_point[str(r.id)] for r in records}

    def search(self, name: str, request: SearchRequest) -> list[Hit]:
        return self.search_batch(name, [request])[0]

    def search_batch(self, name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run many requests as one engine batch per round; results in request order."""
        record = self.get_record(name)
        sparse: dict[int, SparseVector] = {}
        for i, request in enumerate(requests):
            if request.vector is not None and request.vector.shape != (record.dim,):
                raise ModelMismatch(
                    f"query vector has {request.vector.shape[0]} dimensions but collection {name!r} holds "
                    f"{record.dim}-dim vectors built by {record.model_ref}",
                    f"embed the query with {record.model_ref}",
                )
            check_filter_keys(record, request.filters)
            if request.mode.lexical:
                assert request.text is not None  # SearchRequest checks it
                sparse[i] = bm25_query_vector(request.text, record.require_bm25(request.mode))
        results: dict[int, list[Hit]] = {}
        # A bm25 query of stop words only matches nothing; the engine is not asked.
        results.update({i: [] for i, r in enumerate(requests) if r.mode is SearchMode.bm25 and not sparse[i]})
        simple = [i for i, r in enumerate(requests) if r.mode is not SearchMode.weighted and i not in results]
        if simple:
            raw = self._query(name, [plans.plan_search(requests[i], sparse.get(i), record.storage) for i in simple])
            for i, points in zip(simple, raw, strict=True):
                results[i] = hits_from_wire(points, requests[i].with_payload)
        weighted = {i: r for i, r in enumerate(requests) if r.mode is SearchMode.weighted}
        if weighted:
            results.update(self._search_weighted(name, record, weighted))
        return [results[i] for i in range(len(requests))]

    def _search_weighted(
        self, name: str, record: CollectionRecord, requests: dict[int, SearchRequest]
    ) -> dict[int, list[Hit]]:
        """Weighted top-k, certified exact by the threshold bound (see `plans`); deepens until certified."""
        weights = {i: r.resolved_weights(record) for i, r in requests.items()}
        depth = {i: plans.initial_depth(r) for i, r in requests.items()}
        results: dict[int, list[Hit]] = {}
        pending = list(requests)
        while pending:
            groups = {i: plans.plan_weighted(requests[i], weights[i], depth[i], record.storage) for i in pending}
            raw = iter(self._query(name, [plan for i in pending for plan in groups[i]]))
            still = []
            for i in pending:
                lists = [hits_from_wire(next(raw), requests[i].with_payload) for _ in groups[i]]
                tops, hits = lists[:-1], lists[-1]
                if plans.weighted_certified(requests[i], weights[i], tops, hits, depth[i]):
                    results[i] = hits
                else:
                    depth[i] *= 2
                    still.append(i)
            if still:
                log.debug("weighted search: %d queries need a deeper candidate set", len(still))
            pending = still
        return results

    # ---- records
    def update_record(self, record: CollectionRecord) -> None:
        """Replace an existing collection's record (what it remembers, never what it is: `check_update`)."""
        self.hold(record.name)
        check_update(self.get_record(record.name), record)
        self._save_record(record)

    # ---- upgrade
    def add_bm25(
        self, name: str, settings: Bm25Settings | None = None, *, progress: Progress = NULL_PROGRESS
    ) -> CollectionRecord:
        """Give a collection made before keyword search its BM25 sparse vector, from the stored titles.

        Creates the sparse vector, writes every titled point's BM25 vector (`bm25_document_vectors`),
        then saves the record with `settings` (default `Bm25Settings()`), which is what enables the
        `bm25` and `hybrid` modes. Interrupted at any point, it leaves the collection searchable as
        before, and running it again completes it. A collection that has BM25 is returned unchanged.
        """
        record = self.get_record(name)
        if record.bm25 is not None:
            return record
        settings = settings or Bm25Settings()
        self._add_sparse_vector(name)
        task = progress.task(f"adding BM25 vectors to {name}", total=self.count(name), unit="points")
        offset: Any = None
        try:
            while True:
                page, offset = self._scroll_titles(name, offset, self.batch_size)
                vectors = bm25_document_vectors([title for _, title in page], settings)
                updates = [(pid, v) for (pid, _), v in zip(page, vectors, strict=True) if v is not None]
                if updates:
                    self._write_sparse(name, updates)
                task.advance(len(page))
                if offset is None:
                    break
        finally:
            task.close()
        self.flush(name)
        upgraded = dataclasses.replace(record, bm25=settings)
        self._save_record(upgraded)
        log.info("added BM25 vectors to %s (%s)", name, settings)
        return upgraded

    # ---- context manager
    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_bm25(batch: PointColumns, settings: Bm25Settings | None) -> PointColumns:
    """The batch with each title's BM25 vector, on a collection with keyword search (whoever writes)."""
    if settings is None:
        return batch
    return dataclasses.replace(batch, sparse=bm25_document_vectors([p.get("title") for p in batch.payloads], settings))


def _sized(vector: np.ndarray, dim: int, name: str, product_id: str) -> np.ndarray:
    if vector.shape != (dim,):
        raise ModelMismatch(
            f"product {product_id}: vector has shape {vector.shape} but collection {name!r} holds {dim}-dim vectors"
        )
    return vector


def _check_columns(
    record: CollectionRecord, n: int, vectors: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray],
    payloads: Sequence[Mapping[str, Any]],
) -> None:
    unknown = sorted(set(vectors) - set(VECTOR_NAMES))
    if unknown:
        raise ConfigError(f"unknown vector name(s) {unknown}", f"use {', '.join(VECTOR_NAMES)}")
    if "fused" not in vectors or not np.all(present.get("fused", False)):
        raise ConfigError("every product needs a fused vector")
    if len(payloads) != n or set(present) != set(vectors):
        raise ConfigError(f"{n} product ids, {len(payloads)} payloads; present keys {sorted(present)} "
                          f"must match vector keys {sorted(vectors)}")
    for key, array in vectors.items():
        if array.shape != (n, record.dim):
            raise ModelMismatch(
                f"{key} vectors have shape {array.shape} but collection {record.name!r} holds "
                f"({n}, {record.dim}) for {n} products (built by {record.model_ref})"
            )
        if np.asarray(present[key]).shape != (n,):
            raise ConfigError(f"present[{key!r}] must have shape ({n},)")


def collection_not_found(name: str, location: str, existing: list[str]) -> CollectionNotFound:
    hint = (f"existing collections: {', '.join(existing)}" if existing
            else f"the store has no collections yet; create one with `gcl-vdb ingest --collection {name}`")
    return CollectionNotFound(f"collection {name!r} not found in {location}", hint)


def check_update(stored: CollectionRecord, new: CollectionRecord) -> None:
    """`update_record` changes what a collection remembers, never what it is (dim, vectors, creation)."""
    fixed = ("dim", "vectors", "distance", "storage", "created_at")
    if any(getattr(stored, key) != getattr(new, key) for key in fixed):
        raise ConfigError(f"collection {stored.name!r}: an update cannot change {', '.join(fixed)}")
    if stored.identity is not None and new.identity != stored.identity:
        raise ConfigError(f"collection {stored.name!r}: an update cannot change the model identity")


def existing_record(
    stored: CollectionRecord, wanted: CollectionRecord, exist_ok: bool, location: str
) -> CollectionRecord:
    """`create_collection` on an existing name: the stored record if `exist_ok` and the models agree (the
    same identity where both record one, else the same dim) and so does the storage (fixed when a
    collection is created)."""
    if not exist_ok:
        raise StoreError(
            f"collection {wanted.name!r} already exists in {location}",
            f"drop it first (`gcl-vdb collections drop {wanted.name}`) or choose another name",
        )
    if stored.identity is not None and wanted.identity is not None:
        stored.identity.require_same(wanted.identity, stored.name)
    if stored.dim != wanted.dim:
        raise ModelMismatch(
            f"collection {wanted.name!r} holds {stored.dim}-dim vectors built by {stored.model_ref}, "
            f"not {wanted.dim}-dim ones from {wanted.model_ref}",
            "use the collection's model, or ingest into a new collection",
        )
    if stored.storage != wanted.storage:
        raise ConfigError(
            f"collection {wanted.name!r} is stored as {stored.storage.name}, not {wanted.storage.name}",
            f"storage is chosen when a collection is created: drop it first (`gcl-vdb collections drop "
            f"{wanted.name}`), or keep its storage",
        )
    return stored
