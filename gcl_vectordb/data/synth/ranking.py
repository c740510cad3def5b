"""Result lists like a shopping engine's: products ranked by how many query attributes they match.

For a query naming k attributes, product p gets `score = matches(p) + noise`, noise ~ U(−NOISE, NOISE)
with NOISE = 0.75: a product one match short can overtake a full match (graded, not binary relevance),
one two matches short never can. Products matching nothing are never returned; the top
`results_per_query` form the list, position 1..N.

Match counts come from an inverted index (attribute value → sorted product indices), so a query touches
only the products sharing at least one attribute, and only the two best match tiers that reach N get
noise: 1M products × thousands of queries take minutes, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gcl_vectordb.data.synth.text import NO_VALUE
from gcl_vectordb.progress import ProgressTask
from gcl_vectordb.topk import top_k

NOISE = 0.75


@dataclass(frozen=True)
class ResultLists:
    """All result lists, concatenated in query order: row r is (query[r], product[r], position[r]).

    `matches[r]` is how many of the query's attributes the product has (for tests and summaries).
    """

    query: np.ndarray  # (pairs,) int32 query index
    product: np.ndarray  # (pairs,) int32 product index
    position: np.ndarray  # (pairs,) int32, 1-based within the query's list
    matches: np.ndarray  # (pairs,) int8


class InvertedIndex:
    """Attribute value → product indices (ascending), for each of the four slots."""

    def __init__(self, attributes: np.ndarray) -> None:
        self._postings: list[list[np.ndarray]] = []
        for slot in range(attributes.shape[1]):
            column = attributes[:, slot]
            order = np.argsort(column, kind="stable")
            bounds = np.searchsorted(column[order], np.arange(int(column.max(initial=0)) + 2))
            self._postings.append([order[bounds[v] : bounds[v + 1]] for v in range(len(bounds) - 1)])

    def postings(self, query_attributes: np.ndarray) -> list[np.ndarray]:
        return [
            self._postings[slot][value] if value < len(self._postings[slot]) else np.zeros(0, dtype=np.int64)
            for slot, value in enumerate(query_attributes.tolist())
            if value != NO_VALUE
        ]


def rank_query(
    postings: list[np.ndarray], counts: np.ndarray, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`(products, matches)` of one query's list, best first, at most `limit` long.

    `counts` is a zeroed `(n_products,) int8` scratch array; it is zeroed again on return.
    """
    if not postings:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    for posting in postings:
        counts[posting] += 1
    # a product with c matches appears c times in the postings
    union_counts = counts[np.concatenate(postings)]
    per_tier = np.bincount(union_counts, minlength=len(postings) + 1) // np.maximum(
        np.arange(len(postings) + 1), 1
    )
    reach = np.cumsum(per_tier[::-1])[::-1]  # reach[t] = products with ≥ t matches
    top = max((t for t in range(1, len(postings) + 1) if reach[t] >= limit), default=1)
    floor = max(top - 1, 1)  # noise < 1 lets only the next tier down compete
    candidates = np.flatnonzero(counts >= floor)  # one pass over (n,) int8: cheaper than sorting the union
    matches = counts[candidates]
    for posting in postings:
        counts[posting] = 0
    best = top_k(matches + rng.uniform(-NOISE, NOISE, len(candidates)), limit)
    return candidates[best], matches[best]


def rank_all(
    product_attributes: np.ndarray,
    query_attributes: np.ndarray,
    limit: int,
    rng: np.random.Generator,
    task: ProgressTask | None = None,
) -> ResultLists:
    """Every query's list over the whole catalogue (`(n, 4)` and `(m, 4)` attribute indices)."""
    index = InvertedIndex(product_attributes)
    counts = np.zeros(len(product_attributes), dtype=np.int8)
    products, matches, sizes = [], [], []
    for number, query in enumerate(query_attributes, start=1):
        found, found_matches = rank_query(index.postings(query), counts, limit, rng)
        products.append(found)
        matches.append(found_matches)
        sizes.append(len(found))
        if task is not None and (number % 256 == 0 or number == len(query_attributes)):
            task.update(completed=number)
    size = np.asarray(sizes, dtype=np.int64)
    starts = np.repeat(np.cumsum(size) - size, size)
    total = int(size.sum())
    return ResultLists(
        query=np.repeat(np.arange(len(query_attributes), dtype=np.int32), size),
        product=np.concatenate(products).astype(np.int32) if total else np.zeros(0, np.int32),
        position=(np.arange(total) - starts + 1).astype(np.int32),
        matches=np.concatenate(matches).astype(np.int8) if total else np.zeros(0, np.int8),
    )
