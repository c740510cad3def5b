"""Search modes as backend-neutral query plans (Qdrant's Query API shape: prefetch → score → limit).

`schema.py` translates a `QueryPlan` to qdrant-edge-py or qdrant-client requests, so every mode is
written once and behaves the same on both backends.

The `weighted` mode, score(p) = Σ_f w_f · cos(q, e_f(p)) (missing field → 0), is computed exactly
over a candidate set C = top-L(image) ∪ top-L(title): each field's cosine is recomputed for all of
C by nested prefetches and summed by a formula. A point outside C has, for every field f, either no
vector or cos ≤ s_f(L) (the L-th best cosine of f), so its score is at most
    bound = Σ_f w_f · max(s_f(L), 0)        (a field whose top-L list ran short contributes 0).
If the k-th best score in C reaches `bound`, the top-k is certified exact (Fagin's threshold
algorithm); otherwise L doubles and the search runs again. The certificate needs the exact cosine of
every candidate: the stages that rescore the candidates are exact (on an indexed collection the engine
would otherwise walk the HNSW graph restricted to the candidates and may skip some) and read the
original vectors, never a quantized copy.

The `bm25` mode scores the title's sparse vector (`gcl_vectordb.store.bm25`); `hybrid` prefetches the
top-N on `fused` and the top-N by BM25 and fuses the two rankings in the engine (RRF or DBSF).

Quantized collections (`StorageOptions`): a `Nearest` stage of an approximate search scores the quantized
copy and rescores `oversampling` × limit candidates with the originals; an exact one reads the originals
(`ORIGINALS`), so `exact=True` gives the same results on every storage with float32 originals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gcl_vectordb.domain import DOCUMENT_FIELDS, FieldWeights, FusionMethod, SearchMode
from gcl_vectordb.store.bm25 import SPARSE_VECTOR, SparseVector
from gcl_vectordb.store.records import Hit, SearchRequest
from gcl_vectordb.store.storage import StorageOptions

RRF_DEPTH_FACTOR = 5
RRF_MIN_DEPTH = 50
WEIGHTED_DEPTH_FACTOR = 4
WEIGHTED_MIN_DEPTH = 40


@dataclass(frozen=True)
class Nearest:
    """Cosine similarity of `vector` `(dim,)` to the named vector `using`."""

    vector: np.ndarray
    using: str


@dataclass(frozen=True)
class SparseNearest:
    """Dot product of the sparse `vector` with the sparse vector `using`, each stored weight scaled by its
    term's IDF over the points matching `idf_corpus` (exact-match conditions; empty: the whole collection)."""

    vector: SparseVector
    using: str
    idf_corpus: tuple[tuple[str, str | int], ...] = ()


@dataclass(frozen=True)
class DbsfFusion:
    """Distribution-based score fusion of the prefetches (`gcl_vectordb.domain.FusionMethod`)."""


@dataclass(frozen=True)
class RrfFusion:
    """Reciprocal rank fusion of the prefetches: Σ_i 1 / (k + position_i), position 0-based."""

    k: int


@dataclass(frozen=True)
class WeightedSum:
    """Σ_i weights[i] · score of prefetch i; a point a prefetch did not return counts 0 there."""

    weights: tuple[float, ...]


@dataclass(frozen=True)
class QuantizedSearch:
    """How a stage uses quantized copies: `ignore` them and read the original vectors, or score them
    and `rescore` the best `oversampling` × limit candidates with the originals."""

    ignore: bool = False
    rescore: bool = True
    oversampling: float = 1.0


ORIGINALS = QuantizedSearch(ignore=True)


@dataclass(frozen=True)
class QueryPlan:
    """One query stage: score the prefetched candidates (or the whole collection) and keep `limit`.

    `conditions` are exact-match payload conditions (key, value), applied at every stage.
    `with_payload`: True (all), False (none) or the keys to return. `quantization`: how the stage uses
    quantized copies (None: the engine's default).
    """

    query: Nearest | SparseNearest | RrfFusion | DbsfFusion | WeightedSum
    limit: int
    prefetch: tuple[QueryPlan, ...] = ()
    conditions: tuple[tuple[str, str | int], ...] = ()
    exact: bool = False
    hnsw_ef: int | None = None
    with_payload: bool | tuple[str, ...] = ("product_id",)
    quantization: QuantizedSearch | None = None


def conditions_of(request: SearchRequest) -> tuple[tuple[str, str | int], ...]:
    conditions = [(key, value) for key, value in sorted(request.filters.items())]
    if request.corpus is not None:
        conditions.append(("corpus", request.corpus))
    return tuple(conditions)


def _payload_of(request: SearchRequest) -> bool | tuple[str, ...]:
    # product_id always comes back: it names the hit.
    return True if request.with_payload else ("product_id",)


def quantized_search(request: SearchRequest, storage: StorageOptions | None) -> QuantizedSearch | None:
    """Exact: the originals. Approximate on a quantized collection: the request's rescoring, else the
    collection's. Otherwise None (nothing to say to the engine)."""
    if request.exact:
        return ORIGINALS
    if storage is None or not storage.quantized:
        return None
    return QuantizedSearch(
        rescore=storage.rescore if request.rescore is None else request.rescore,
        oversampling=storage.oversampling if request.oversampling is None else float(request.oversampling),
    )


def _nearest(
    request: SearchRequest, using: str, limit: int, storage: StorageOptions | None,
    payload: bool | tuple[str, ...] = ("product_id",),
) -> QueryPlan:
    return QueryPlan(
        Nearest(request.vector, using), limit, conditions=conditions_of(request), exact=request.exact,
        hnsw_ef=request.hnsw_ef, with_payload=payload, quantization=quantized_search(request, storage),
    )


def _bm25(
    request: SearchRequest, sparse: SparseVector, limit: int, payload: bool | tuple[str, ...] = ("product_id",)
) -> QueryPlan:
    # The IDF is the searched corpus's: the one product corpus a search or an evaluation split filters on.
    idf_corpus = (("corpus", request.corpus),) if request.corpus is not None else ()
    return QueryPlan(SparseNearest(sparse, SPARSE_VECTOR, idf_corpus), limit, conditions=conditions_of(request),
                     with_payload=payload)


def fusion_depth(request: SearchRequest) -> int:
    """How many candidates each ranking of an `rrf` or `hybrid` search contributes to the fusion."""
    return max(request.limit * RRF_DEPTH_FACTOR, RRF_MIN_DEPTH)


def plan_search(
    request: SearchRequest, sparse: SparseVector | None = None, storage: StorageOptions | None = None
) -> QueryPlan:
    """The plan of any request but `weighted` (which has `plan_weighted`); `sparse` is the query's BM25
    vector, needed by the `bm25` and `hybrid` modes; `storage` the collection's (None: not quantized)."""
    if request.mode in (SearchMode.fused, SearchMode.image, SearchMode.title):
        return _nearest(request, request.mode.value, request.limit, storage, _payload_of(request))
    if request.mode is SearchMode.rrf:
        return QueryPlan(
            RrfFusion(request.rrf_k), request.limit,
            prefetch=tuple(_nearest(request, f, fusion_depth(request), storage) for f in DOCUMENT_FIELDS),
            conditions=conditions_of(request), with_payload=_payload_of(request),
        )
    if request.mode.lexical:
        if sparse is None:
            raise ValueError(f"mode {request.mode} needs the query's sparse vector")
        if request.mode is SearchMode.bm25:
            return _bm25(request, sparse, request.limit, _payload_of(request))
        fusion = RrfFusion(request.rrf_k) if request.fusion is FusionMethod.rrf else DbsfFusion()
        depth = fusion_depth(request)
        return QueryPlan(
            fusion, request.limit, prefetch=(_nearest(request, "fused", depth, storage), _bm25(request, sparse, depth)),
            conditions=conditions_of(request), with_payload=_payload_of(request),
        )
    raise ValueError(f"use plan_weighted for mode {request.mode!r}")


def initial_depth(request: SearchRequest) -> int:
    return max(request.limit * WEIGHTED_DEPTH_FACTOR, WEIGHTED_MIN_DEPTH)


def plan_weighted(
    request: SearchRequest, weights: FieldWeights, depth: int, storage: StorageOptions | None = None
) -> list[QueryPlan]:
    """[top-`depth` of each weighted field (for the bound)..., the weighted top-k over their union]."""
    fields = weights.positive()
    tops = tuple(_nearest(request, f, depth, storage) for f in fields)
    union = len(fields) * depth
    rescored = tuple(
        QueryPlan(Nearest(request.vector, f), union, prefetch=tops, conditions=conditions_of(request),
                  exact=True, quantization=ORIGINALS)
        for f in fields
    )
    combined = QueryPlan(
        WeightedSum(tuple(fields.values())), request.limit, prefetch=rescored,
        conditions=conditions_of(request), with_payload=_payload_of(request),
    )
    return [*tops, combined]


def weighted_certified(
    request: SearchRequest, weights: FieldWeights, tops: Sequence[Sequence[Hit]], hits: Sequence[Hit],
    depth: int,
) -> bool:
    """True when no point outside the candidates can enter the weighted top-k (module docstring).

    `tops` are the per-field top-`depth` lists, `hits` the weighted top-k over their union. A field
    whose list ran short holds every point with that field, so outside points score 0 there.
    """
    fields = weights.positive()
    if all(len(top) < depth for top in tops):
        return True
    bound = sum(
        alpha * max(top[-1].score, 0.0) for alpha, top in zip(fields.values(), tops, strict=True)
        if len(top) >= depth
    )
    # 1e-6: the engines compute cosines in float32.
    return len(hits) >= request.limit and hits[request.limit - 1].score >= bound - 1e-6
