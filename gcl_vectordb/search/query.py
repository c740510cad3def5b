"""Text queries against a collection, embedded with the model the collection was built with.

    with open_store("gcl-vdb-store") as store:
        result = search_products(store, "gs10m", "red summer dress", mode="rrf", limit=10)
    for hit in result.hits:
        print(hit.rank, hit.score, hit.product_id, hit.title)

The encoder comes from the collection record's `model_ref` (cached per process, so a service pays the
model load once); an ONNX bundle runs without torch, which keeps a cold `gcl-vdb query` fast.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gcl_vectordb.domain import FieldWeights, SearchMode
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.store import SearchRequest, VectorStore, check_model, open_store
from gcl_vectordb.store.records import CollectionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryHit:
    """One result: 1-based rank, score (cosine for fused/image/title, RRF or weighted sum otherwise),
    the product and its payload (title, image path, corpus, extra columns)."""

    rank: int
    product_id: str
    score: float
    title: str | None
    corpus: int | None
    image: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    """Hits of one query and what produced them; `seconds`: model (load), embed, search, total.
    `images_dir`: the folder relative image paths of the payloads start from (None if unknown);
    `dataset_root`: the dataset folder the collection was built from (parquet images are read there)."""

    query: str
    collection: str
    mode: SearchMode
    limit: int
    model_ref: str
    dim: int
    hits: tuple[QueryHit, ...]
    seconds: dict[str, float]
    images_dir: str | None = None
    dataset_root: str | None = None
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    weights: FieldWeights | None = None


@functools.lru_cache(maxsize=4)
def cached_encoder(model_ref: str, device: str = "auto") -> Encoder:
    """The text side of `load_encoder(model_ref)`, loaded once per process and model (a service
    queries many times; an ONNX bundle's image tower is never loaded)."""
    return load_encoder(model_ref, device=device, towers=("text",))


def search_products(
    store: VectorStore,
    collection: str,
    text: str,
    *,
    mode: SearchMode | str = SearchMode.fused,
    limit: int = 10,
    weights: FieldWeights | None = None,
    corpus: int | None = None,
    filters: Mapping[str, str | int] | None = None,
    exact: bool = False,
    encoder: Encoder | None = None,
) -> QueryResult:
    """Embed `text` with the collection's model (or `encoder`, which must have the collection's dim)
    and search. Raises CollectionNotFound, ModelMismatch, ConfigError (bad mode, limit, weights)."""
    started = time.perf_counter()
    if not text.strip():
        raise ConfigError("the query text is empty", 'give some words to search for, e.g. "red summer dress"')
    mode = SearchMode.parse(mode)
    record = store.get_record(collection)
    clock = time.perf_counter()
    encoder = encoder or cached_encoder(record.model_ref)
    check_model(record, encoder.model_ref, encoder.dim)
    loaded = time.perf_counter()
    vector = encoder.encode_texts([text])[0]
    embedded = time.perf_counter()
    request = SearchRequest(vector, mode=mode, limit=limit, corpus=corpus, filters=dict(filters or {}),
                            exact=exact, weights=weights)
    found = store.search(collection, request)
    done = time.perf_counter()
    hits = tuple(_hit(rank, hit.product_id, hit.score, hit.payload or {}) for rank, hit in enumerate(found, 1))
    return QueryResult(
        query=text, collection=collection, mode=mode, limit=limit, model_ref=record.model_ref, dim=record.dim,
        hits=hits, images_dir=_images_dir(record), dataset_root=record.dataset_root, corpus=corpus, filters=dict(filters or {}),
        weights=request.resolved_weights(record) if mode is SearchMode.weighted else None,
        seconds={"model": loaded - clock, "embed": embedded - loaded, "search": done - embedded,
                 "total": done - started},
    )


def _hit(rank: int, product_id: str, score: float, payload: Mapping[str, Any]) -> QueryHit:
    corpus = payload.get("corpus")
    return QueryHit(rank=rank, product_id=product_id, score=score, title=payload.get("title"),
                    corpus=int(corpus) if isinstance(corpus, int) else None, image=payload.get("image"),
                    payload=dict(payload))


def _images_dir(record: CollectionRecord) -> str | None:
    value = record.ingest.get("images_dir")
    return str(value) if value else None


@dataclass(frozen=True)
class QueryConfig:
    """One query from the command line: the text, where to search and how (see `search_products`)."""

    text: str
    collection: str
    store: str
    api_key: str | None = field(default=None, repr=False)
    mode: SearchMode = SearchMode.fused
    limit: int = 10
    weights: FieldWeights | None = None
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    exact: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SearchMode.parse(self.mode))
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError(f"limit must be a positive integer, got {self.limit!r}")
        if self.weights is not None and self.mode is not SearchMode.weighted:
            raise ConfigError(f"weights apply to the weighted mode, not {self.mode}", "add --mode weighted")


def query(config: QueryConfig) -> QueryResult:
    """Open the store, run one query, close the store (what `gcl-vdb query` does)."""
    with open_store(config.store, api_key=config.api_key) as store:
        return search_products(
            store, config.collection, config.text, mode=config.mode, limit=config.limit, weights=config.weights,
            corpus=config.corpus, filters=config.filters, exact=config.exact,
        )
