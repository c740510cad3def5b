"""The vector store: Qdrant collections of products (named vectors image / title / fused + payload).

`open_store(location)` picks the backend from the location:
- `http://…` / `https://…` → `ServerStore` (`gcl_vectordb.store.server`) on a Qdrant server or cluster (API key from the caller);
- `:memory:` or `local:PATH` → `ServerStore` on qdrant-client's local mode (tests, tiny data);
- anything else → `EmbeddedStore`, the Qdrant engine in-process, one folder per collection under it.

    with open_store("gcl-vdb-store") as store:  # one process holds a collection until close (`store.lock`)
        store.create_collection(CollectionRecord("gs10m", model_ref="model/", dim=512,
                                                 storage=StorageOptions.preset("int8-disk")))
        store.upsert("gs10m", points)
        hits = store.search("gs10m", SearchRequest(query_vector, mode="rrf", limit=10))

`CollectionRecord.storage` (`gcl_vectordb.store.storage`) says how the collection stores its vectors; it is
applied when the collection is created and fixed from then on.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from gcl_vectordb.errors import ConfigError
from gcl_vectordb.store.base import VectorStore
from gcl_vectordb.store.embedded import EmbeddedOptions, EmbeddedStore
from gcl_vectordb.store.records import (
    VECTOR_NAMES,
    CollectionRecord,
    Hit,
    IngestProgress,
    PointRecord,
    SearchRequest,
    product_payload,
    require_complete,
    require_model,
)
from gcl_vectordb.store.schema import point_id
from gcl_vectordb.store.storage import PRESETS, StorageOptions, VectorStorage, parse_storage

__all__ = [
    "PRESETS", "VECTOR_NAMES", "CollectionRecord", "EmbeddedOptions", "EmbeddedStore",
    "Hit", "IngestProgress", "PointRecord", "SearchRequest", "StorageOptions", "VectorStorage", "VectorStore",
    "is_server_location", "open_store", "parse_storage", "point_id", "product_payload", "require_complete",
    "require_model",
]


def is_server_location(location: str | Path) -> bool:
    """True for locations served through qdrant-client (URLs and local mode)."""
    text = str(location)
    return text.startswith(("http://", "https://", "local:")) or text == ":memory:"


def open_store(location: str | Path, *, api_key: str | None = None, **options: Any) -> VectorStore:
    """Open the store at `location` (see the module docstring); `options` go to the backend's options.

    Embedded options: `EmbeddedOptions` fields (HNSW and indexing thresholds, batch size).
    Server options: `ServerOptions` fields (timeout, batch size, retries, backoff, green wait, gRPC port,
    upserts in flight).
    """
    text = str(location)
    if is_server_location(text):
        # qdrant_client takes 1 s to import: only server locations load it (`gcl_vectordb.store.server`)
        from gcl_vectordb.store.server import ServerOptions, ServerStore

        server_options = _options(ServerOptions, options)
        if text.startswith(("http://", "https://")):
            return ServerStore.connect(text, api_key=api_key, options=server_options)
        return ServerStore.local_mode(text, options=server_options)
    return EmbeddedStore(Path(text), _options(EmbeddedOptions, options))


def _options(kind: type, options: dict[str, Any]) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown store option(s) {', '.join(unknown)}", f"known: {', '.join(sorted(known))}")
    return kind(**options)
