"""Text queries against a collection, embedded with the model the collection was built with.

    with open_store("gcl-vdb-store") as store:
        result = search_products(store, "gs10m", "red summer dress", mode="rrf", limit=10)
    for hit in result.hits:
        print(hit.rank, hit.score, hit.product_id, hit.title)

The encoder comes from the collection record's `model_ref` (cached per process, so a service pays the
model load once); an ONNX bundle runs without torch, which keeps a cold `gcl-vdb query` fast. The `bm25`
mode needs no model at all (the query is embedded by the collection's BM25), `hybrid` needs both.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gcl_vectordb.domain import FieldWeights, FusionMethod, SearchMode
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.store import SearchRequest, VectorStore, open_store, require_model
from gcl_vectordb.store.records import CollectionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryHit:
    """One result: 1-based rank, score (cosine for fused/image/title, BM25 for bm25, the fused or weighted
    score otherwise), the product and its payload (title, image path, corpus, extra columns)."""

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
    `dataset_root`: the dataset folder the collection was built from (parquet images are read there).
    `fusion`: how a `hybrid` search fused its rankings (None for the other modes)."""

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
    fusion: FusionMethod | None = None

    def describe_mode(self) -> str:
        """`hybrid (rrf)`, `bm25`, `fused`: the mode, with the fusion of a hybrid search."""
        return f"{self.mode} ({self.fusion})" if self.fusion is not None else str(self.mode)


@functools.lru_cache(maxsize=4)
def cached_encoder(model_ref: str, device: str = "auto") -> Encoder:
    """The text side of `load_encoder(model_ref)`, loaded once per process and model (a service
    queries many times; an ONNX bundle's image tower is never loaded)."""
    return load_encoder(model_ref, device=device, towers=("text",))


@dataclass(frozen=True)
class TextQuery:
    """What one text query asks, validated once: the words, the mode, how many hits, which products.

    `weights` apply to the `weighted` mode only (default: the collection's field weights); `fusion` to
    the `hybrid` mode only (default: rrf); `corpus` keeps corpus == N; `filters` adds exact payload
    matches; `exact` skips the HNSW index.
    """

    text: str
    mode: SearchMode = SearchMode.fused
    limit: int = 10
    weights: FieldWeights | None = None
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    exact: bool = False
    fusion: FusionMethod | None = None

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ConfigError("the query text is empty", 'give some words to search for, e.g. "red summer dress"')
        object.__setattr__(self, "mode", SearchMode.parse(self.mode))
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ConfigError(f"limit must be a positive integer, got {self.limit!r}")
        if self.weights is not None and self.mode is not SearchMode.weighted:
            raise ConfigError(f"weights apply to the weighted mode, not {self.mode}", "add --mode weighted")
        if self.fusion is not None:
            object.__setattr__(self, "fusion", FusionMethod.parse(self.fusion))
            if self.mode is not SearchMode.hybrid:
                raise ConfigError(f"fusion applies to the hybrid mode, not {self.mode}", "add --mode hybrid")
        object.__setattr__(self, "filters", dict(self.filters))

    @property
    def resolved_fusion(self) -> FusionMethod | None:
        """The fusion of a hybrid query (rrf unless given); None for the other modes."""
        return (self.fusion or FusionMethod.rrf) if self.mode is SearchMode.hybrid else None


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
    fusion: FusionMethod | str | None = None,
) -> QueryResult:
    """Embed `text` with the collection's model (or `encoder`, which must be that model: `require_model`)
    and search; the `bm25` mode loads no model. `fusion` is how `hybrid` fuses the fused-vector and the
    BM25 rankings (default rrf). Raises CollectionNotFound, CollectionInUse, ModelMismatch, ConfigError
    (bad mode, limit, weights, fusion), StoreError (a keyword mode on a collection without BM25, naming the
    fix)."""
    started = time.perf_counter()
    query = TextQuery(text, mode=SearchMode.parse(mode), limit=limit, weights=weights, corpus=corpus,
                      filters=filters or {}, exact=exact, fusion=fusion)
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
    query order, each as `search_products` would return it (`seconds` are the batch's, shared). Only the
    queries of dense modes are embedded: a batch of `bm25` queries loads no model."""
    started = time.perf_counter() if started is None else started
    store.hold(collection)
    record = store.get_record(collection)
    for q in queries:
        if q.mode.lexical:
            record.require_bm25(q.mode)  # before the model loads
    clock = loaded = time.perf_counter()
    dense = [i for i, q in enumerate(queries) if q.mode.dense]
    vectors: list[np.ndarray | None] = [None] * len(queries)
    if dense:
        encoder = encoder or cached_encoder(record.model_ref)
        require_model(record, encoder.identity)
        loaded = time.perf_counter()
        for i, vector in zip(dense, encoder.encode_texts([queries[i].text for i in dense]), strict=True):
            vectors[i] = vector
    embedded = time.perf_counter()
    requests = [SearchRequest(vector, mode=q.mode, limit=q.limit, corpus=q.corpus, filters=q.filters,
                              exact=q.exact, weights=q.weights, text=q.text, fusion=q.resolved_fusion or "rrf")
                for q, vector in zip(queries, vectors, strict=True)]
    found = store.search_batch(collection, requests)
    done = time.perf_counter()
    seconds = {"model": loaded - clock, "embed": embedded - loaded, "search": done - embedded, "total": done - started}
    images_dir = _images_dir(record)
    return [
        QueryResult(
            query=q.text, collection=collection, mode=q.mode, limit=q.limit, model_ref=record.model_ref,
            dim=record.dim, images_dir=images_dir, dataset_root=record.dataset_root, corpus=q.corpus,
            filters=q.filters, seconds=seconds,
            hits=tuple(_hit(rank, hit.product_id, hit.score, hit.payload or {}) for rank, hit in enumerate(hits, 1)),
            weights=request.resolved_weights(record) if q.mode is SearchMode.weighted else None,
            fusion=q.resolved_fusion,
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
