"""Keyword search: Qdrant's own BM25 turns product titles and query texts into sparse vectors.

Documents and queries are embedded on the client with the engine's `Bm25` embedder (qdrant-edge-py),
for both backends, so that the embedded engine and a Qdrant server index identical sparse vectors and
tokenise queries identically. The collection's sparse vector `bm25` carries the IDF modifier: the engine
supplies the inverse document frequency at query time, over the points that have the vector (or over
one corpus, `SparseNearest.idf_corpus`). A product's score (docs/protocol.md, "Keyword search (BM25)"):

    score(q, d) = Σ_{t ∈ q} idf(t) · tf(t, d) · (k + 1) / (tf(t, d) + k · (1 − b + b · |d| / avg_len))
    idf(t) = ln(1 + (N − n_t + 0.5) / (n_t + 0.5))

with tf and |d| counted after tokenisation: words split at every non-alphanumeric character, lowercased,
English stop words removed, Snowball English stems. A query term counts once however often it appears.
`avg_len` is a fixed setting of the collection, not the corpus mean (the engine's embedder takes it as
a constant, so a document's vector never changes when others are added).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import qdrant_edge as edge

from gcl_vectordb.errors import ConfigError

SPARSE_VECTOR = "bm25"
"""Name of the sparse vector holding each product title's BM25 term weights."""
DEFAULT_AVG_LEN = 12.0
"""Tokens of a typical product title after stop words (Qdrant's own default, 256, suits passages)."""


@dataclass(frozen=True)
class SparseVector:
    """Term ids (the embedder's token hashes) and their weights; both of one length, ids unique."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Bm25Settings:
    """The BM25 parameters of a collection, fixed at its creation: k (term-frequency saturation, ≥ 0),
    b (length normalisation, 0..1), avg_len (the document length that b normalises to, > 0) and the
    language of the stop words and stemmer (one Qdrant supports, e.g. "english")."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float = DEFAULT_AVG_LEN
    language: str = "english"

    def __post_init__(self) -> None:
        for name in ("k", "b", "avg_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"BM25 {name}={value!r} is not a finite number")
            object.__setattr__(self, name, float(value))
        if self.k < 0 or not 0 <= self.b <= 1 or self.avg_len <= 0:
            raise ConfigError(f"BM25 settings k={self.k}, b={self.b}, avg_len={self.avg_len} are out of range",
                              "k ≥ 0, 0 ≤ b ≤ 1, avg_len > 0")
        _embedder(self)  # an unsupported language fails here, where the settings enter

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bm25Settings:
        unknown = sorted(set(data) - {"k", "b", "avg_len", "language"})
        if unknown:
            raise ConfigError(f"unknown BM25 setting(s) {', '.join(unknown)}")
        return cls(**data)


@functools.lru_cache(maxsize=8)
def _embedder(settings: Bm25Settings) -> edge.Bm25:
    try:
        return edge.Bm25(edge.Bm25Config(k=settings.k, b=settings.b, avg_len=settings.avg_len,
                                         language=settings.language))
    except ValueError as exc:
        raise ConfigError(f"BM25: {exc}", "use a language Qdrant supports, e.g. english") from None


def bm25_document_vectors(titles: Sequence[str | None], settings: Bm25Settings) -> list[SparseVector | None]:
    """The sparse vector of each title: per distinct term, tf · (k + 1) / (tf + k · (1 − b + b · |d| / avg_len))
    (the IDF factor comes from the engine). None where there is no title, or only stop words: such a
    product has no BM25 vector, is not counted in N and never matches a keyword query."""
    embed = _embedder(settings).embed_document
    vectors: list[SparseVector | None] = []
    for title in titles:
        embedded = embed(title) if title else None
        vectors.append(SparseVector(tuple(embedded.indices), tuple(embedded.values))
                       if embedded is not None and embedded.indices else None)
    return vectors


def bm25_query_vector(text: str, settings: Bm25Settings) -> SparseVector:
    """The query's distinct terms, each of weight 1 (empty when the text holds only stop words)."""
    embedded = _embedder(settings).embed_query(text)
    return SparseVector(tuple(embedded.indices), tuple(embedded.values))
