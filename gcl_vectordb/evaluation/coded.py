"""Judging without strings: ground truth as integer arrays, retrieved lists as (queries, ranks) code arrays.

`judge_run` looks every retrieved document id up in a dict, one Python call per document; at 2000 × 1000
that look-up is most of the cost of computing the metrics. Here the ground truth is laid out once per
split (`CodedQrels`), retrieval hands its top-k over as arrays (`RetrievedRun`: product ids and float32
scores), the product ids become integer codes once (`lookup_codes`, called by retrieval as it converts
hits, or `RetrievedRun.codes_in`) and judging is array indexing:

  code of (query q, product p) = position of p in the flat judged list of q (offsets[q] ≤ code < offsets[q+1]),
                                 −1 where q has no judgment of p
  gains[q, r]                  = rels[code of the document at rank r]  (0 for −1)

Ranking is `trec_rank_order` (score as float32 descending, ties by product id descending), so
`judge_codes` gives exactly the `JudgedRun` that `judge_run` gives for the same (doc, score) pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

from gcl_vectordb.evaluation.judging import JudgedRun, Qrels, Run, trec_rank_order


@dataclass(frozen=True, eq=False)
class CodedQrels:
    """The judgments of Q queries as flat arrays (built once per split by `from_qrels`).

      doc_ids   (J,)    judged product ids, query after query (object array of str)
      rels      (J,)    their rels (int32, ≥ 0)
      offsets   (Q+1,)  query q's judgments are [offsets[q], offsets[q+1])
      ideal     (Q, G)  each query's rels sorted descending, 0-padded (G = most judgments of one query)
      n_relevant, max_rel (Q,)  judged documents with rel ≥ 1; the largest rel (0 if none)
    """

    queries: tuple[str, ...]
    doc_ids: np.ndarray
    rels: np.ndarray
    offsets: np.ndarray
    ideal: np.ndarray
    n_relevant: np.ndarray
    max_rel: np.ndarray
    positions: tuple[dict[str, int], ...]  # per query: product id → its code

    @classmethod
    def from_qrels(cls, qrels: Qrels, queries: Sequence[str] | None = None) -> CodedQrels:
        """Lay `qrels` out for `queries` (default: all of them, in `qrels` order); a query without
        judgments gets none. Cost: one pass over the judgments (dict building at C speed)."""
        qids = tuple(qrels) if queries is None else tuple(queries)
        if len(set(qids)) != len(qids):
            raise ValueError("queries must not repeat")
        judgments = [qrels.get(q, {}) for q in qids]
        counts = np.fromiter(map(len, judgments), dtype=np.int64, count=len(qids))
        offsets = np.concatenate(([0], np.cumsum(counts)))
        total = int(offsets[-1])
        doc_ids = np.empty(total, dtype=object)
        doc_ids[:] = list(chain.from_iterable(judgments))
        rels = np.fromiter(chain.from_iterable(j.values() for j in judgments), dtype=np.int64, count=total)
        if rels.size and (rels.min() < 0 or rels.max() > np.iinfo(np.int32).max):
            raise ValueError("judged rels must be integers in 0 .. 2^31 − 1 (0 = judged non-relevant)")
        positions = tuple(
            dict(zip(judged, range(start, start + len(judged)), strict=True))
            for judged, start in zip(judgments, offsets[:-1].tolist(), strict=True)
        )
        ideal = _ideal(rels.astype(np.int32), offsets)
        max_rel = ideal[:, 0].copy() if ideal.shape[1] else np.zeros(len(qids), dtype=np.int32)
        coded = cls(qids, doc_ids, rels.astype(np.int32), offsets, ideal, (ideal >= 1).sum(axis=1), max_rel,
                    positions)
        for array in (doc_ids, coded.rels, offsets, ideal, coded.n_relevant, max_rel):
            array.flags.writeable = False
        return coded

    def __len__(self) -> int:
        return len(self.queries)

    def to_qrels(self) -> dict[str, dict[str, int]]:
        """Back to `{query: {product_id: rel}}` (judgment order kept)."""
        bounds = self.offsets.tolist()
        ids, rels = self.doc_ids.tolist(), self.rels.tolist()
        return {q: dict(zip(ids[a:b], rels[a:b], strict=True))
                for q, a, b in zip(self.queries, bounds[:-1], bounds[1:], strict=True)}


def _ideal(rels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(Q, G) rels of each query sorted descending, 0-padded."""
    counts = np.diff(offsets)
    ideal = np.zeros((len(counts), int(counts.max(initial=0))), dtype=np.int32)
    rows = np.repeat(np.arange(len(counts)), counts)
    ideal[rows, np.arange(rels.size) - offsets[rows]] = rels
    ideal.sort(axis=1)
    return np.ascontiguousarray(ideal[:, ::-1])


def lookup_codes(coded: CodedQrels, row: int, doc_ids: Sequence[str]) -> np.ndarray:
    """`(n,)` int64 codes of query `row`'s retrieved products in `coded` (−1: not judged for it).

    One look-up per product in the query's own small table; retrieval calls it while the hit's id
    string is fresh, so that judging never touches a string again."""
    return np.fromiter(map(coded.positions[row].get, doc_ids, repeat(-1)), dtype=np.int64, count=len(doc_ids))


@dataclass(frozen=True, eq=False)
class RetrievedRun:
    """What retrieval returns for Q queries, as arrays: the form `judge_codes` takes.

      doc_ids  Q lists of product ids, each in the order retrieved (best first)
      scores   (Q, K) float32, row q's first lengths[q] entries are its scores, the rest 0
      lengths  (Q,) int64, K = the longest list
      codes    (Q, K) int64 codes in `codes_for` (−1: unjudged or padding), when retrieval looked them up
    """

    queries: tuple[str, ...]
    doc_ids: tuple[list[str], ...]
    scores: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray | None = None
    codes_for: CodedQrels | None = None

    @classmethod
    def from_lists(
        cls, queries: Sequence[str], doc_ids: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
        *, codes: Sequence[np.ndarray] | None = None, codes_for: CodedQrels | None = None,
    ) -> RetrievedRun:
        """From per-query product ids and scores (equal lengths per query), and optionally the per-query
        codes (`lookup_codes`) in `codes_for`."""
        if not len(queries) == len(doc_ids) == len(scores):
            raise ValueError("queries, doc_ids and scores need one entry per query")
        lengths = np.fromiter(map(len, doc_ids), dtype=np.int64, count=len(doc_ids))
        if not np.array_equal(lengths, np.fromiter(map(len, scores), dtype=np.int64, count=len(scores))):
            raise ValueError("each query needs as many scores as product ids")
        matrix = np.zeros((len(doc_ids), int(lengths.max(initial=0))), dtype=np.float32)
        for row, (values, n) in enumerate(zip(scores, lengths.tolist(), strict=True)):
            matrix[row, :n] = values
        coded_matrix = None
        if codes is not None:
            if codes_for is None or len(codes) != len(doc_ids):
                raise ValueError("codes need one array per query and the CodedQrels they refer to")
            coded_matrix = np.full(matrix.shape, -1, dtype=np.int64)
            for row, (values, n) in enumerate(zip(codes, lengths.tolist(), strict=True)):
                coded_matrix[row, :n] = values
        return cls(tuple(queries), tuple(list(ids) for ids in doc_ids), matrix, lengths, coded_matrix, codes_for)

    def codes_in(self, coded: CodedQrels) -> np.ndarray:
        """(Q, K) int64 codes of the retrieved products in `coded` (−1: not judged for that query):
        the ones retrieval looked up, else one dict look-up per product now."""
        if self.queries != coded.queries:
            raise ValueError("the run and the ground truth must list the same queries in the same order")
        if self.codes is not None and self.codes_for is coded:
            return self.codes
        out = np.full(self.scores.shape, -1, dtype=np.int64)
        for row, (ids, n) in enumerate(zip(self.doc_ids, self.lengths.tolist(), strict=True)):
            out[row, :n] = lookup_codes(coded, row, ids)
        return out

    def as_run(self, rename: Mapping[str, str] | None = None) -> Run:
        """`{query: [(product_id, score), ...]}` for `judge_run` and the TREC writer; `rename` maps
        query texts to other keys (e.g. TREC query ids)."""
        rows = self.scores.tolist()
        return {
            (rename[q] if rename is not None else q): list(zip(ids, rows[i][: len(ids)], strict=True))
            for i, (q, ids) in enumerate(zip(self.queries, self.doc_ids, strict=True))
        }


def judge_codes(coded: CodedQrels, run: RetrievedRun, *, depth: int = 1000,
                codes: np.ndarray | None = None) -> JudgedRun:
    """The `JudgedRun` of `run` against `coded`: equal to `judge_run(run.as_run(), coded.to_qrels(),
    depth=depth)`, computed with array indexing. Codes: `codes` if given, else `run.codes_in(coded)`."""
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    if run.queries != coded.queries:
        raise ValueError("the run and the ground truth must list the same queries in the same order")
    codes = run.codes_in(coded) if codes is None else codes
    if codes.shape != run.scores.shape:
        raise ValueError(f"codes {codes.shape} must have the shape of the scores {run.scores.shape}")
    if coded.rels.size:
        unordered = np.take(coded.rels, codes, mode="clip")  # clip: −1 reads rels[0], masked next
        unordered[codes < 0] = 0
    else:
        unordered = np.zeros(codes.shape, dtype=np.int32)
    order = trec_rank_order(run.scores, run.lengths, run.doc_ids)
    gains = np.ascontiguousarray(np.take_along_axis(unordered, order[:, :depth], axis=1))
    retrieved = np.minimum(run.lengths, depth)
    return JudgedRun(coded.queries, gains, retrieved, coded.ideal, coded.n_relevant, coded.max_rel, depth)
