"""The sink of `ingest` and `ingest --embeddings`: points upserted into a collection, flushed at checkpoints,
the ingest's progress saved in the collection's record after each (what `evaluate` checks)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any

from gcl_vectordb.ingest.pipeline import EncodedBatch
from gcl_vectordb.store import VectorStore
from gcl_vectordb.store.base import PreparedUpsert
from gcl_vectordb.store.records import IngestProgress


class StoreSink:
    """Upserts into `collection`; ids already stored are skipped (a repeated upsert would be a no-op anyway,
    UUID5 point ids). The reader (`stored`) and the writer thread share the store: one at a time, unless
    the store is `thread_safe` (the embedded engine), where the reader's look-ups overlap the writes."""

    stage = "upsert"

    def __init__(self, store: VectorStore, collection: str) -> None:
        self.store, self.collection = store, collection
        self._lock: contextlib.AbstractContextManager = (
            contextlib.nullcontext() if store.thread_safe else threading.Lock())

    def stored(self, corpus: int, product_ids: list[str]) -> tuple[set[str], dict[str, Any]]:
        with self._lock:
            found = self.store.retrieve(self.collection, product_ids)
        elsewhere = {r.product_id: r.payload.get("corpus") for r in found if r.payload.get("corpus") != corpus}
        return {r.product_id for r in found if r.product_id not in elsewhere}, elsewhere

    def prepare(self, batch: EncodedBatch) -> PreparedUpsert:
        return self.store.prepare_upsert(self.collection, batch.product_ids, batch.vectors, batch.present,
                                         batch.payloads)

    def write(self, batch: EncodedBatch, prepared: PreparedUpsert) -> None:
        with self._lock:
            self.store.write_prepared(prepared)

    def due(self) -> bool:
        return False

    def flush(self) -> None:
        with self._lock:
            self.store.flush(self.collection)

    def saved(self, progress: IngestProgress) -> None:
        with self._lock:
            record = self.store.get_record(self.collection)
            if record.progress != progress:
                self.store.update_record(dataclasses.replace(record, progress=progress))
