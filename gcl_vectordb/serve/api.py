"""The service's wire records (pydantic, validated where requests enter) and their conversions.

A request body becomes a `TextQuery` (the search API's own type) in one place, `SearchBody.to_query`;
a `QueryResult` becomes a response in one place, `search_response`. Nothing else touches JSON.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from gcl_vectordb.domain import FieldWeights, FusionMethod, SearchMode
from gcl_vectordb.search.query import QueryHit, QueryResult, TextQuery
from gcl_vectordb.store import PointRecord

MAX_QUERY_CHARS = 1000
"""Longest query text accepted: the text tower reads 77 tokens, more text only costs tokenizer time."""
MAX_LIMIT = 1000
MAX_BATCH_QUERIES = 64
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+")  # needs no percent-encoding (and skips quote(): 10 µs a hit)


class SearchBody(BaseModel):
    """One search: the query text, the mode, how many hits, an optional corpus filter and field weights."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "red summer dress", "mode": "fused", "limit": 10},
        {"query": "striped shirt", "mode": "weighted", "weights": {"image": 0.7, "title": 0.3}, "corpus": 1},
        {"query": "nordlys 42 boots", "mode": "hybrid", "fusion": "dbsf"},
    ]})

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to search for.")
    mode: SearchMode = Field(SearchMode.fused, description="fused, image, title, rrf, weighted, bm25 (keyword "
                                                           "search in the titles) or hybrid (fused + bm25).")
    limit: int = Field(10, ge=1, le=MAX_LIMIT, description="How many hits.")
    corpus: Literal[1, 2] | None = Field(None, description="Only products of this corpus.")
    weights: dict[Literal["image", "title"], float] | None = Field(
        None, description="Field weights of the weighted mode (default: the collection's).")
    fusion: FusionMethod | None = Field(
        None, description="How the hybrid mode fuses the fused-vector and BM25 rankings: rrf (default) or dbsf.")

    def to_query(self) -> TextQuery:
        """The search API's query; raises ConfigError (empty text, weights without the weighted mode,
        fusion without the hybrid mode)."""
        weights = FieldWeights.from_mapping(self.weights, "weights") if self.weights is not None else None
        return TextQuery(self.query, mode=self.mode, limit=self.limit, weights=weights, corpus=self.corpus,
                         fusion=self.fusion)


class BatchBody(BaseModel):
    """Several searches answered together (each is batched with concurrent ones as a single search is)."""

    model_config = ConfigDict(extra="forbid")

    searches: list[SearchBody] = Field(min_length=1, max_length=MAX_BATCH_QUERIES)


class HitOut(BaseModel):
    rank: int
    product_id: str
    score: float
    title: str | None
    corpus: int | None
    image_url: str | None = Field(description="This service's /images URL of the product, or null.")


class SearchOut(BaseModel):
    query: str
    mode: SearchMode
    fusion: FusionMethod | None = Field(None, description="The fusion of a hybrid search, else null.")
    limit: int
    corpus: int | None
    collection: str
    hits: list[HitOut]


class BatchOut(BaseModel):
    results: list[SearchOut]


class ProductOut(BaseModel):
    product_id: str
    title: str | None
    corpus: int | None
    image_url: str | None
    payload: dict[str, Any] = Field(description="Everything stored with the product.")


class ErrorOut(BaseModel):
    detail: str


def image_url(root_path: str, product_id: str, has_image: bool) -> str | None:
    """`<root_path>/images/<id>` (the id percent-encoded), or None for a product without an image."""
    if not has_image:
        return None
    return f"{root_path}/images/{product_id if _URL_SAFE.fullmatch(product_id) else quote(product_id, safe='')}"


def search_response(result: QueryResult, root_path: str = "") -> dict[str, Any]:
    """A `SearchOut` as plain data: responses are built as dicts and dumped once, because pydantic's
    `model_construct` costs ~15 µs per object (11 per response) on the hot path; tests validate the
    responses against the models."""
    return {"query": result.query, "mode": result.mode.value, "limit": result.limit, "corpus": result.corpus,
            "fusion": result.fusion.value if result.fusion is not None else None,
            "collection": result.collection, "hits": [_hit(hit, root_path) for hit in result.hits]}


def _hit(hit: QueryHit, root_path: str) -> dict[str, Any]:
    return {"rank": hit.rank, "product_id": hit.product_id, "score": hit.score, "title": hit.title,
            "corpus": hit.corpus, "image_url": image_url(root_path, hit.product_id, bool(hit.image))}


def product_response(product: PointRecord, root_path: str = "") -> ProductOut:
    payload = dict(product.payload)
    corpus = payload.get("corpus")
    return ProductOut(product_id=product.product_id, title=payload.get("title"),
                      corpus=corpus if isinstance(corpus, int) else None,
                      image_url=image_url(root_path, product.product_id, bool(payload.get("image"))), payload=payload)
