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
from collections.abc import Mapping, Sequence
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
    `images_dir`: the folder relative image paths of the payloads start from (None if unknown)."""

    query: str
    collection: str
    mode: SearchMode
    limit: int
    model_ref: str
    dim: int
    hits: tuple[QueryHit, ...]
    seconds: dict[str, float]
    images_dir: str | None = None
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    weights: FieldWeights | None = None


@functools.lru_cache(maxsize=4)
def cached_encoder(model_ref: str, device: str = "auto") -> Encoder:
    """The text side of `load_encoder(model_ref)`, loaded once per process and model (a service
    queries many times; an ONNX bundle's image tower is never loaded)."""
    return load_encoder(model_ref, device=device, towers=("text",))


@dataclass(frozen=True)
class TextQuery:
    """What one text query asks, validated once: the words, the mode, how many hits, which products.

    `weights` apply to the `weighted` mode only (default: the collection's field weights); `corpus`
    keeps corpus == N; `filters` adds exact payload matches; `exact` skips the HNSW index.
    """

    text: str
    mode: SearchMode = SearchMode.fused
    limit: int = 10
    weights: FieldWeights | None = None
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    exact: bool = False

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ConfigError("the query text is empty", 'give some words to search for, e.g. "red summer dress"')
        object.__setattr__(self, "mode", SearchMode.parse(self.mode))
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ConfigError(f"limit must be a positive integer, got {self.limit!r}")
        if self.weights is not None and self.mode is not SearchMode.weighted:
            raise ConfigError(f"weights apply to the weighted mode, not {self.mode}", "add --mode weighted")
        object.__setattr__(self, "filters", dict(self.filters))


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
    query = TextQuery(text, mode=SearchMode.parse(mode), limit=limit, weights=weights, corpus=corpus,
                      filters=filters or {}, exact=exact)
    return search_products_batch(store, collection, [query], encoder=encoder, started=started)[0]


def search_products_batch(
    store: VectorStore,
    collection: str,
    queries: Sequence[TextQuery],
    *,
    encoder: Encoder | None = None,
    started: float | None = None,
) -> list[QueryResult]:
    """Many queries with one `encode_texts` call `(n, dim)` and one `store.search_batch` call; results in
    query order, each as `search_products` would return it (`seconds` are the batch's, shared)."""
    started = time.perf_counter() if started is None else started
    record = store.get_record(collection)
    clock = time.perf_counter()
    encoder = encoder or cached_encoder(record.model_ref)
    check_model(record, encoder.model_ref, encoder.dim)
    loaded = time.perf_counter()
    vectors = encoder.encode_texts([q.text for q in queries])
    embedded = time.perf_counter()
    requests = [SearchRequest(vector, mode=q.mode, limit=q.limit, corpus=q.corpus, filters=q.filters,
                              exact=q.exact, weights=q.weights) for q, vector in zip(queries, vectors, strict=True)]
    found = store.search_batch(collection, requests)
    done = time.perf_counter()
    seconds = {"model": loaded - clock, "embed": embedded - loaded, "search": done - embedded, "total": done - started}
    images_dir = _images_dir(record)
    return [
        QueryResult(
            query=q.text, collection=collection, mode=q.mode, limit=q.limit, model_ref=record.model_ref,
            dim=record.dim, images_dir=images_dir, corpus=q.corpus, filters=q.filters, seconds=seconds,
            hits=tuple(_hit(rank, hit.product_id, hit.score, hit.payload or {}) for rank, hit in enumerate(hits, 1)),
            weights=request.resolved_weights(record) if q.mode is SearchMode.weighted else None,
        )
        for q, request, hits in zip(queries, requests, found, strict=True)
    ]


def _hit(rank: int, product_id: str, score: float, payload: Mapping[str, Any]) -> QueryHit:
    corpus = payload.get("corpus")
    return QueryHit(rank=rank, product_id=product_id, score=score, title=payload.get("title"),
                    corpus=int(corpus) if isinstance(corpus, int) else None, image=payload.get("image"),
                    payload=dict(payload))


def _images_dir(record: CollectionRecord) -> str | None:
    value = record.ingest.get("images_dir")
    return str(value) if value else None


@dataclass(frozen=True, kw_only=True)
class QueryConfig(TextQuery):
    """One query from the command line: a `TextQuery` and where to run it (see `search_products`)."""

    collection: str
    store: str
    api_key: str | None = field(default=None, repr=False)


def query(config: QueryConfig) -> QueryResult:
    """Open the store, run one query, close the store (what `gcl-vdb query` does)."""
    with open_store(config.store, api_key=config.api_key) as store:
        return search_products_batch(store, config.collection, [config])[0]
