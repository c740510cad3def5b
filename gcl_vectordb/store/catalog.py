"""What `gcl-vdb collections list|info|drop|add-bm25` does, as library calls: describe, drop and upgrade
collections."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gcl_vectordb.data.records import CORPORA
from gcl_vectordb.errors import ConfigError, OutOfSpace
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import VectorStore, open_store
from gcl_vectordb.store.records import CollectionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreTarget:
    """Where the store is: a folder (embedded), an http(s) URL, `:memory:` or `local:PATH`.

    The API key is kept out of the repr so that it never reaches logs or tracebacks.
    """

    location: str
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.location:
            raise ConfigError("the store location is empty", "pass --qdrant PATH|URL or set GCL_VDB_STORE")

    def open(self) -> VectorStore:
        return open_store(self.location, api_key=self.api_key)


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's record and size. `points` is None where it was not counted: another process holds
    the collection (`note` names it) or the disk has no room to open it. `status`: how far its ingest got
    (`CollectionRecord.status`)."""

    name: str
    location: str
    points: int | None
    corpus_points: dict[int, int]
    record: CollectionRecord
    note: str | None = None
    status: str = "complete"


def _describe(store: VectorStore, record: CollectionRecord) -> CollectionInfo:
    """Count a collection's points — unless another process holds it: then its shard is left alone."""
    status = record.status()
    busy = store.in_use(record.name)
    if busy is not None:
        log.info("not counting %s: %s", record.name, busy)
        return CollectionInfo(record.name, store.location, None, {}, record, f"in use by {busy.holder}", status)
    record = store.get_record(record.name)  # read again under the lock
    try:
        points = store.count(record.name)
        corpus = {c: store.count(record.name, corpus=c) for c in CORPORA}
    except OutOfSpace as exc:
        return CollectionInfo(record.name, store.location, None, {}, record, f"not counted: {exc}", record.status())
    return CollectionInfo(record.name, store.location, points, corpus, record, None, record.status())


def describe_collections(target: StoreTarget) -> list[CollectionInfo]:
    """Every gcl-vdb collection in the store, with point counts (sorted by name)."""
    with target.open() as store:
        return [_describe(store, record) for record in store.list_collections()]


def describe_collection(target: StoreTarget, name: str) -> CollectionInfo:
    """One collection; raises CollectionNotFound naming the existing ones."""
    with target.open() as store:
        return _describe(store, store.get_record(name))


def drop_collection(target: StoreTarget, name: str) -> CollectionInfo:
    """Delete a collection and its record; returns what it held. Refuses while another process uses it."""
    with target.open() as store:
        info = _describe(store, store.get_record(name))
        store.drop(name)
    return info


def add_bm25(target: StoreTarget, name: str, progress: Progress = NULL_PROGRESS) -> tuple[CollectionInfo, bool]:
    """Give a collection made before keyword search its BM25 sparse vector from the stored titles (no
    model needed; `VectorStore.add_bm25`). Returns the collection and whether anything was added (False
    when it had BM25 already). Safe to interrupt and run again."""
    with target.open() as store:
        store.hold(name)
        had = store.get_record(name).bm25 is not None
        store.add_bm25(name, progress=progress)
        return _describe(store, store.get_record(name)), not had
