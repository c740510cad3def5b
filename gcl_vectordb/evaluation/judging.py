"""Turn a retrieval run and its ground truth into dense relevance arrays, ranked the way trec_eval ranks.

`judge_run` is the only place that touches document ids: it looks every retrieved document up in the
query's judgments once, orders each list as trec_eval does and truncates it to `depth`. Everything
after it (`gcl_vectordb.evaluation.metrics`) is array arithmetic over all queries at once.

trec_eval's order (checked against pytrec_eval, pinned in tests/test_metrics.py): score descending,
compared as a C `float` (trec_eval stores scores in single precision, so scores equal in float32 tie),
ties broken by document id descending (`strcmp`, i.e. code-point order for UTF-8 ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

Run = Mapping[str, Sequence[tuple[str, float]]]
"""query_id → retrieved (doc_id, score) pairs, in any order; doc ids unique within a query."""
RankedRun = Mapping[str, Sequence[str]]
"""query_id → retrieved doc ids already in rank order (ties already broken as trec_eval does)."""
Qrels = Mapping[str, Mapping[str, int]]
"""query_id → {doc_id: rel}, rel an integer ≥ 0 (0 = judged non-relevant; unjudged docs count as 0)."""


@dataclass(frozen=True, eq=False)
class JudgedRun:
    """A run judged against its ground truth: Q queries, ranked lists cut at `depth`.

    Arrays (read-only, int64):
      gains       (Q, K)  rel of the document at rank r + 1 (0 if unjudged or past the list's end);
                          K = the longest retrieved list after truncation (≤ depth)
      retrieved   (Q,)    number of documents retrieved (≤ depth); 0 for a query missing from the run
      ideal       (Q, G)  the query's judged rels sorted descending, 0-padded to G = most judgments
      n_relevant  (Q,)    judged documents with rel ≥ 1
      max_rel     (Q,)    the query's largest judged rel (0 if it has none)
    """

    queries: tuple[str, ...]
    gains: np.ndarray
    retrieved: np.ndarray
    ideal: np.ndarray
    n_relevant: np.ndarray
    max_rel: np.ndarray
    depth: int

    def __post_init__(self) -> None:
        n = len(self.queries)
        if self.gains.ndim != 2 or self.ideal.ndim != 2:
            raise ValueError("gains and ideal must be (queries, ranks) arrays")
        shapes = {a.shape[0] for a in (self.gains, self.retrieved, self.ideal, self.n_relevant, self.max_rel)}
        if shapes != {n}:
            raise ValueError(f"every array needs one row per query ({n}), got first dimensions {shapes}")
        if self.gains.size and (self.gains.min() < 0 or (self.gains > self.max_rel[:, None]).any()):
            raise ValueError("gains must lie in 0..max_rel of their query")
        for array in (self.gains, self.retrieved, self.ideal, self.n_relevant, self.max_rel):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.queries)


def trec_rank_order(query_index: np.ndarray, scores: np.ndarray, doc_ids: Sequence[str]) -> np.ndarray:
    """Permutation that sorts flat (query, doc, score) entries into trec_eval's ranking.

    query_index (N,) int, scores (N,) float, doc_ids (N,) str. Sorts by query ascending, then score
    descending as float32, then doc id descending. Only tied entries ever touch the doc id strings.
    """
    key = np.asarray(scores, dtype=np.float32)
    if np.isnan(key).any():
        raise ValueError("a run score is NaN; scores must be numbers")
    order = np.lexsort((-key, query_index))
    sorted_key, sorted_query = key[order], query_index[order]
    tied_with_next = (sorted_key[1:] == sorted_key[:-1]) & (sorted_query[1:] == sorted_query[:-1])
    if not tied_with_next.any():
        return order
    in_tie = np.zeros(len(order), dtype=bool)
    in_tie[:-1] |= tied_with_next
    in_tie[1:] |= tied_with_next
    positions = np.flatnonzero(in_tie)
    # A tie group starts wherever an entry is not tied with the one before it.
    starts_group = np.ones(len(positions), dtype=bool)
    starts_group[1:] = ~tied_with_next[positions[1:] - 1]
    group = np.cumsum(starts_group)
    names = np.array([str(doc_ids[i]) for i in order[positions]])
    _, name_rank = np.unique(names, return_inverse=True)
    order[positions] = order[positions][np.lexsort((-name_rank.ravel(), group))]
    return order


def judge_run(
    run: Run | RankedRun,
    qrels: Qrels,
    *,
    queries: Sequence[str] | None = None,
    depth: int = 1000,
) -> JudgedRun:
    """Look the run up in the ground truth and lay it out as (queries, ranks) arrays.

    `queries` decides which queries count and in what order (default: the queries of `qrels`). A query
    missing from the run gets an empty list (it scores 0 everywhere and still counts in the mean); a
    query missing from `qrels` has no judgments; run queries not in `queries` are ignored, as trec_eval
    ignores queries without judgments. `run` holds either (doc_id, score) pairs in any order, ranked as
    trec_eval ranks them, or bare doc ids already in rank order (detected from the first entry).
    """
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    qids = tuple(qrels) if queries is None else tuple(queries)
    if len(set(qids)) != len(qids):
        raise ValueError("queries must not repeat")
    judgments = [qrels.get(q, {}) for q in qids]
    entries = [run.get(q, ()) for q in qids]
    lengths = np.fromiter(map(len, entries), dtype=np.int64, count=len(qids))
    gains, retrieved = _ranked_gains(entries, judgments, lengths, depth)
    ideal, n_relevant, max_rel = _ideal_gains(judgments)
    return JudgedRun(qids, gains, retrieved, ideal, n_relevant, max_rel, depth)


def _ranked_gains(
    entries: list[Sequence], judgments: list[Mapping[str, int]], lengths: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """gains (Q, K) in rank order cut at depth, and retrieved (Q,)."""
    n_queries, total = len(entries), int(lengths.sum())
    retrieved = np.minimum(lengths, depth)
    width = int(retrieved.max()) if n_queries else 0
    gains = np.zeros((n_queries, width), dtype=np.int64)
    if total == 0:
        return gains, retrieved
    flat = list(chain.from_iterable(entries))
    ranked = isinstance(flat[0], str)
    if ranked:
        doc_ids: Sequence[str] = flat
    else:
        doc_ids, scores = zip(*flat, strict=True)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    looked_up = chain.from_iterable(
        map(rels.get, doc_ids[s : s + n], repeat(0))
        for rels, s, n in zip(judgments, starts.tolist(), lengths.tolist(), strict=True)
    )
    flat_gains = np.fromiter(looked_up, dtype=np.int64, count=total)
    query_index = np.repeat(np.arange(n_queries), lengths)
    if not ranked:
        order = trec_rank_order(query_index, np.array(scores, dtype=np.float64), doc_ids)
        flat_gains = flat_gains[order]  # query_index is unchanged: the order keeps queries contiguous
    rank = np.arange(total) - starts[query_index]
    keep = rank < depth
    gains[query_index[keep], rank[keep]] = flat_gains[keep]
    return gains, retrieved


def _ideal_gains(judgments: list[Mapping[str, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ideal (Q, G) judged rels sorted descending, n_relevant (Q,), max_rel (Q,)."""
    n_queries = len(judgments)
    counts = np.fromiter(map(len, judgments), dtype=np.int64, count=n_queries)
    rels = np.fromiter(chain.from_iterable(j.values() for j in judgments), dtype=np.int64, count=int(counts.sum()))
    if rels.size and rels.min() < 0:
        raise ValueError("judged rels must be integers ≥ 0 (0 = judged non-relevant)")
    query_index = np.repeat(np.arange(n_queries), counts)
    order = np.lexsort((-rels, query_index))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ideal = np.zeros((n_queries, int(counts.max()) if n_queries else 0), dtype=np.int64)
    ideal[query_index, np.arange(rels.size) - starts[query_index]] = rels[order]
    n_relevant = np.bincount(query_index, weights=rels >= 1, minlength=n_queries).astype(np.int64)
    max_rel = ideal[:, 0].copy() if ideal.shape[1] else np.zeros(n_queries, dtype=np.int64)
    return ideal, n_relevant, max_rel
