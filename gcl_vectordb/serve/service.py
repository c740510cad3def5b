"""One collection served: the store handle, the collection's model (text tower, loaded once) and the
micro-batcher whose single worker thread runs every embedding and every search.

    service = open_service(ServeConfig(collection="gs10m", store="gcl-vdb-store"))
    results = await service.search([TextQuery("red summer dress", limit=10)])   # QueueFull when full
    service.close()                                                             # drains, closes the store

The embedded engine admits one process per collection, so a service is one process holding the store
from start to shutdown; concurrency comes from batching inside it, not from more processes.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gcl_vectordb.encoders import Encoder
from gcl_vectordb.errors import ConfigError, StoreError
from gcl_vectordb.imaging import ImageRejected, contained_file
from gcl_vectordb.search.query import QueryResult, TextQuery, cached_encoder, search_products_batch
from gcl_vectordb.serve.batcher import BatchLimits, MicroBatcher, QueueFull
from gcl_vectordb.serve.metrics import ServeMetrics
from gcl_vectordb.store import PointRecord, VectorStore, open_store, require_model

log = logging.getLogger(__name__)

__all__ = ["QueueFull", "SearchService", "ServeConfig", "open_service"]


@dataclass(frozen=True)
class ServeConfig:
    """How `gcl-vdb serve` runs: what it serves, where it listens, its limits.

    `store_api_key` is the Qdrant server's key; `api_key` the key this service asks of every request
    (None: no key). `max_connections`: open connections beyond it get 503 from the HTTP server itself.
    `drain_timeout_s`: how long a shutdown waits for requests in flight before cancelling them.
    """

    collection: str
    store: str
    store_api_key: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    batching: BatchLimits = BatchLimits()
    max_body_bytes: int = 64 * 1024
    max_connections: int = 1024
    cors_origins: tuple[str, ...] = ()
    drain_timeout_s: float = 30.0
    access_log: bool = False
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port", "use 1–65535 (0: any free port)")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty", "set a non-empty --api-key / GCL_VDB_API_KEY, or none")
        if self.max_body_bytes < 1024 or self.max_connections < 1 or self.drain_timeout_s <= 0:
            raise ConfigError("max body ≥ 1 KiB, max connections ≥ 1 and drain timeout > 0 are required")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))


class SearchService:
    """The collection `collection` of `store` (which the service now owns, holds and closes), its model, and
    a started batcher. `encoder` replaces the collection's model (tests inject a slow one); it must be that
    model (`require_model`)."""

    def __init__(self, store: VectorStore, collection: str, *, encoder: Encoder | None = None,
                 limits: BatchLimits = BatchLimits()) -> None:
        self.store, self.collection = store, collection
        store.hold(collection)  # for the service's lifetime: a busy collection fails before we listen
        self.record = store.get_record(collection)
        self.encoder = encoder or cached_encoder(self.record.model_ref)
        require_model(self.record, self.encoder.identity)
        self.size = store.count(collection)
        self.images_root = _images_root(self.record.ingest.get("images_dir"))
        self.metrics = ServeMetrics()
        self._store_lock = threading.Lock()  # the batcher's worker and product look-ups share the handle
        self._closed = False
        self.batcher: MicroBatcher[TextQuery, QueryResult] = MicroBatcher(
            self._search_batch, limits, on_batch=self.metrics.observe_batch)
        self.metrics.track_queue(self.batcher.depth)
        self.batcher.start()
        log.info("serving collection %s (%d products, %d-dim, model %s); batches of ≤ %d, queue %d",
                 collection, self.size, self.record.dim, self.record.model_ref, limits.max_batch, limits.queue_size)

    @property
    def ready(self) -> bool:
        return not self._closed and self.batcher.running

    def _search_batch(self, queries: list[TextQuery]) -> list[QueryResult]:
        with self._store_lock:
            return search_products_batch(self.store, self.collection, queries, encoder=self.encoder)

    async def search(self, queries: Sequence[TextQuery]) -> list[QueryResult]:
        """Results of `queries`, in order, each batched with whatever else is waiting.

        Raises QueueFull (nothing of this call is run) when the queue cannot take them all, ConfigError
        for a keyword mode on a collection without BM25 (before batching, so no other query fails)."""
        for query in queries:
            if query.mode.lexical:
                try:
                    self.record.require_bm25(query.mode)
                except StoreError as exc:
                    raise ConfigError(exc.message, exc.hint) from None
        futures = []
        try:
            for query in queries:
                futures.append(self.batcher.submit(query))
        except QueueFull:
            for future in futures:
                future.cancel()
            self.metrics.rejected.inc(len(queries))
            raise
        return list(await asyncio.gather(*(asyncio.wrap_future(future) for future in futures)))

    def product(self, product_id: str) -> PointRecord | None:
        """The stored product (payload, no vectors), or None."""
        with self._store_lock:
            found = self.store.retrieve(self.collection, [product_id])
        return found[0] if found else None

    def image_file(self, product: PointRecord) -> tuple[Path, str] | None:
        """The product's own image file and its media type, or None.

        The path comes from the product's stored payload, never from a request, and must resolve (symlinks
        followed) to an image file inside the collection's images folder; anything else is refused."""
        name = product.payload.get("image")
        if not isinstance(name, str) or not name or self.images_root is None:
            return None
        try:
            path = contained_file(self.images_root / name, self.images_root)
        except ImageRejected as exc:
            if exc.reason == "image-outside-folder":
                log.warning("refused the image of product %s: %s", product.product_id, exc.detail)
            return None
        media_type = mimetypes.guess_type(path.name)[0] or ""
        return (path, media_type) if media_type.startswith("image/") else None

    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking queries, finish those queued (at most `timeout_s`), close the store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        drained = self.batcher.close(timeout_s)
        if not drained:
            log.warning("the batcher did not finish within %s s; closing the store anyway", timeout_s)
        with self._store_lock:
            self.store.close()
        log.info("closed collection %s", self.collection)


def _images_root(images_dir: object) -> Path | None:
    if not images_dir:
        return None
    root = Path(str(images_dir)).resolve()
    if not root.is_dir():
        log.warning("the collection's images folder %s is missing: /images answers 404", root)
        return None
    return root


def open_service(config: ServeConfig, *, encoder: Encoder | None = None) -> SearchService:
    """Open the store and the collection, load its model: every error a user can cause (missing or busy
    collection, unreachable server, wrong model) is raised here, before anything listens."""
    store = open_store(config.store, api_key=config.store_api_key)
    try:
        return SearchService(store, config.collection, encoder=encoder, limits=config.batching)
    except BaseException:
        store.close()
        raise
