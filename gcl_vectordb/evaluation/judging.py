"""Turn a retrieval run and its ground truth into dense relevance arrays, ranked the way trec_eval ranks.

`judge_run` is the only place that touches document ids: it looks every retrieved document up in the
query's judgments once, orders each list as trec_eval does and truncates it to `depth`. Everything
after it (`gcl_vectordb.evaluation.metrics`) is array arithmetic over all queries at once.

trec_eval's order (checked against pytrec_eval, pinned in tests/test_metrics.py): score descending,
compared as a C `float` (trec_eval stores scores in single precision, so scores equal in float32 tie),
ties broken by document id descending (`strcmp`, i.e. code-point order for UTF-8 ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice, repeat
from operator import itemgetter

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

    Arrays (read-only, integer):
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


def trec_rank_order(scores: np.ndarray, lengths: np.ndarray, doc_id: Callable[[int, int], str]) -> np.ndarray:
    """Column order (Q, W) that ranks every row of `scores` as trec_eval does.

    scores (Q, W): row q holds the scores of query q's first lengths[q] documents, the rest is padding
    (ranked last). Order: score descending compared as float32, then doc id descending. doc_id(q, j)
    names the document behind scores[q, j]; only tied entries are named, which are rare.
    """
    key = np.negative(scores, dtype=np.float32)
    if np.isnan(key).any():
        raise ValueError("a run score is NaN; scores must be numbers")
    width = key.shape[1]
    if (lengths < width).any():
        key[np.arange(width) >= lengths[:, None]] = np.nan  # argsort puts NaN last, after any -inf score
    if not (key[:, 1:] < key[:, :-1]).any():  # already in score order, as retrieval returns it (NaN: False)
        order, sorted_key = np.tile(np.arange(width), (key.shape[0], 1)), key
    else:
        order = np.argsort(key, axis=1)
        sorted_key = np.take_along_axis(key, order, axis=1)
    # Flat index i*W + j of every sorted entry tied with the one after it (NaN padding never ties).
    tied = np.flatnonzero(sorted_key[:, 1:] == sorted_key[:, :-1])
    if not tied.size:
        return order
    tied = tied + tied // (width - 1)  # from the (Q, W−1) comparison grid to (Q, W) positions
    ties_next = np.zeros(key.size, dtype=bool)  # flat position ties with the one after it (same row)
    ties_next[tied] = True
    in_group = ties_next.copy()
    in_group[tied + 1] = True
    members = np.flatnonzero(in_group)  # sorted, so each tie group is a contiguous run
    starts = np.ones(members.size, dtype=bool)  # a member starts a group unless its predecessor ties with it
    starts[members > 0] = ~ties_next[members[members > 0] - 1]
    group = np.cumsum(starts)
    rows, positions = np.divmod(members, width)
    columns = order[rows, positions]
    names = [str(doc_id(r, c)) for r, c in zip(rows.tolist(), columns.tolist(), strict=True)]
    # Groups ascending, names descending within each: sort by (group, name) ascending, flip everything,
    # then put the groups back in ascending order with a stable sort. numpy compares str arrays by code
    # point, as Python and trec_eval's strcmp on UTF-8 do (ids hold no NUL characters).
    flipped = np.lexsort((np.array(names, dtype=str), group))[::-1]
    order[rows, positions] = columns[flipped[np.argsort(group[flipped], kind="stable")]]
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
    trec_eval ranks them, or bare doc ids already in rank order; one form per run (read from the first
    entry). Cost: one dict lookup per retrieved document (a C-level `map` per query), then numpy.
    """
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    qids = tuple(qrels) if queries is None else tuple(queries)
    if len(set(qids)) != len(qids):
        raise ValueError("queries must not repeat")
    judgments = [qrels.get(q, {}) for q in qids]
    entries = [run.get(q, ()) for q in qids]
    lengths = np.fromiter(map(len, entries), dtype=np.int64, count=len(qids))
    retrieved = np.minimum(lengths, depth)
    first = next((e[0] for e in entries if len(e)), None)
    if first is None:
        gains = np.zeros((len(qids), 0), dtype=np.int32)
    elif isinstance(first, str):
        gains = _look_up(entries, judgments, retrieved, pairs=False)
    else:
        gains = _rank_scored(entries, judgments, lengths, depth)
    ideal, n_relevant, max_rel = _ideal_gains(judgments)
    return JudgedRun(qids, gains, retrieved, ideal, n_relevant, max_rel, depth)


_DOC, _SCORE = itemgetter(0), itemgetter(1)


def _look_up(
    entries: list[Sequence], judgments: list[Mapping[str, int]], counts: np.ndarray, *, pairs: bool
) -> np.ndarray:
    """(Q, max counts) rels of the first counts[q] documents of each list, 0 where unjudged.

    entries[q] holds doc ids, or (doc_id, score) pairs when `pairs`."""
    gains = np.zeros((len(counts), int(counts.max(initial=0))), dtype=np.int32)
    for row, (docs, rels, n) in enumerate(zip(entries, judgments, counts.tolist(), strict=True)):
        gains[row, :n] = _small_ints(partial(_rels_of, docs, rels, n, pairs))
    return gains


def _rels_of(docs: Sequence, rels: Mapping[str, int], n: int, pairs: bool) -> Iterator[int]:
    return map(rels.get, islice(map(_DOC, docs) if pairs else docs, n), repeat(0))


def _small_ints(values: Callable[[], Iterable[int]]) -> np.ndarray:
    """The integers `values()` yields, as an array that fits int32; bytes() converts rels in 0..255
    fastest, others take the general path (values() is called again: it must build a fresh iterator)."""
    try:
        return np.frombuffer(bytes(values()), dtype=np.uint8)
    except (ValueError, TypeError):
        general = np.array(list(values()), dtype=np.int64)
        if general.size and general.max() > np.iinfo(np.int32).max:
            raise ValueError("judged rels must be below 2^31") from None
        return general


def _rank_scored(
    entries: list[Sequence[tuple[str, float]]], judgments: list[Mapping[str, int]], lengths: np.ndarray, depth: int
) -> np.ndarray:
    """gains (Q, min(depth, longest list)) of (doc_id, score) lists put in trec_eval's order."""
    scores = np.zeros((len(entries), int(lengths.max())), dtype=np.float32)  # trec_eval compares float32
    for row, (pairs, n) in enumerate(zip(entries, lengths.tolist(), strict=True)):
        scores[row, :n] = np.fromiter(map(_SCORE, pairs), dtype=np.float64, count=n)
    unordered = _look_up(entries, judgments, lengths, pairs=True)
    order = trec_rank_order(scores, lengths, lambda q, j: entries[q][j][0])
    return np.take_along_axis(unordered, order[:, :depth], axis=1)


def _ideal_gains(judgments: list[Mapping[str, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ideal (Q, G) judged rels sorted descending, n_relevant (Q,), max_rel (Q,)."""
    counts = [len(j) for j in judgments]
    ideal = np.zeros((len(judgments), max(counts, default=0)), dtype=np.int32)  # int32 sorts fast
    for row, (rels, n) in enumerate(zip(judgments, counts, strict=True)):
        ideal[row, :n] = _small_ints(rels.values)
    if ideal.size and ideal.min() < 0:
        raise ValueError("judged rels must be integers ≥ 0 (0 = judged non-relevant)")
    ideal.sort(axis=1)
    ideal = np.ascontiguousarray(ideal[:, ::-1])
    max_rel = ideal[:, 0].copy() if ideal.shape[1] else np.zeros(len(judgments), dtype=np.int32)
    return ideal, (ideal >= 1).sum(axis=1), max_rel
