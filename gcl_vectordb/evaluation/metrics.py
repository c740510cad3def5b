"""Ranking metrics of the GCL evaluation protocol (docs/protocol.md, "Metrics"), vectorised over all queries.

Input is a `JudgedRun` (see `judging.py`): gains g[q, r] = rel of the document at rank r + 1, the sorted
judged rels I[q, :], n_relevant, max_rel. Ranks are 1-based in the formulas; "relevant" means rel ≥ 1.
A query with nothing retrieved scores 0 on every metric; every division by zero yields 0, never NaN.

  precision@k = |{r ≤ k : g_r ≥ 1}| / k                        (trec_eval P_k: divides by k even if fewer)
  recall@k    = |{r ≤ k : g_r ≥ 1}| / n_relevant               (trec_eval recall_k)
  map@k       = Σ_{r ≤ k, g_r ≥ 1} precision@r / n_relevant    (trec_eval map_cut_k)
  mrr@k       = 1 / r₁ if the first relevant rank r₁ ≤ k, else 0   (trec_eval recip_rank, cut at k)
  ndcg@k      = Σ_{r ≤ k} g_r / log2(r + 1)  /  Σ_{r ≤ k} I_r / log2(r + 1)   (trec_eval ndcg_cut_k;
                the ideal I = all judged rels sorted descending, retrieved or not)
  err         = Σ_r p_r · R_r / r,  R_r = (2^g_r − 1) / 2^max_rel,  p_1 = 1,  p_{r+1} = p_r · (1 − R_r)
  rbp@p       = (1 − p) · Σ_r (g_r / max_rel) · p^(r − 1)
ERR and RBP run over the whole retrieved list (as cut at the run's depth) and are 0 when max_rel = 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gcl_vectordb.evaluation.judging import JudgedRun

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20, 100, 1000)
DEFAULT_RBP_PS: tuple[float, ...] = (0.7, 0.8, 0.9)
AT_K_METRICS: tuple[str, ...] = ("ndcg", "map", "mrr", "recall", "precision")
HEADLINE: tuple[str, ...] = ("ndcg@10", "err", "rbp@0.7", "rbp@0.8", "rbp@0.9", "map@1000", "mrr@1000")


def metric_name(metric: str, cutoff: int | float | None = None) -> str:
    """Key of a metric in `MetricTable`: "ndcg@10", "rbp@0.8", "err"."""
    if cutoff is None:
        return metric
    return f"{metric}@{cutoff}" if isinstance(cutoff, int) else f"{metric}@{cutoff:g}"


@dataclass(frozen=True, eq=False)
class MetricTable:
    """Per-query metric values (`per_query[name]`, shape (Q,), aligned with `queries`) and their means."""

    queries: tuple[str, ...]
    per_query: Mapping[str, np.ndarray]
    ks: tuple[int, ...]
    rbp_ps: tuple[float, ...]

    def mean(self) -> dict[str, float]:
        """Mean over all queries of every metric (0.0 for an empty table, never NaN)."""
        return {name: float(values.mean()) if values.size else 0.0 for name, values in self.per_query.items()}

    def headline(self) -> dict[str, float]:
        """The protocol's report (docs/protocol.md, "The headline"): NDCG@10, mERR, mRBP7/8/9, MAP@1000,
        MRR@1000."""
        missing = [name for name in HEADLINE if name not in self.per_query]
        if missing:
            raise ValueError(f"the headline needs {', '.join(missing)}: compute with ks ⊇ (10, 1000) "
                             "and rbp_ps ⊇ (0.7, 0.8, 0.9)")
        means = self.mean()
        return {name: means[name] for name in HEADLINE}

    def to_dict(self, *, per_query: bool = False) -> dict[str, Any]:
        """JSON-ready means: {"n_queries", "headline" (when computed), "at_k": {metric: {k: mean}},
        "err", "rbp": {p: mean}}; with per_query, also {"per_query": {"queries": [...], name: [...]}}."""
        means = self.mean()
        out: dict[str, Any] = {"n_queries": len(self.queries)}
        if all(name in means for name in HEADLINE):
            out["headline"] = self.headline()
        out["at_k"] = {m: {str(k): means[metric_name(m, k)] for k in self.ks} for m in AT_K_METRICS}
        out["err"] = means["err"]
        out["rbp"] = {f"{p:g}": means[metric_name("rbp", p)] for p in self.rbp_ps}
        if per_query:
            out["per_query"] = {"queries": list(self.queries)} | {
                name: values.tolist() for name, values in self.per_query.items()
            }
        return out


def compute_metrics(
    judged: JudgedRun, *, ks: Iterable[int] = DEFAULT_KS, rbp_ps: Iterable[float] = DEFAULT_RBP_PS
) -> MetricTable:
    """Every protocol metric for every query of `judged` (formulas in the module docstring).

    ks: cutoffs for ndcg/map/mrr/recall/precision (k may exceed the lists); rbp_ps: RBP persistence
    values in (0, 1). Cost: a handful of passes over the (Q, K) gains (sums up to every cutoff come from
    one segmented sum), no per-query Python loop, no BLAS.
    """
    ks = tuple(sorted({int(k) for k in ks}))
    rbp_ps = tuple(sorted({float(p) for p in rbp_ps}))
    if not ks or ks[0] < 1:
        raise ValueError(f"cutoffs must be integers ≥ 1, got {ks}")
    if any(not 0.0 < p < 1.0 for p in rbp_ps):
        raise ValueError(f"RBP persistence values must lie in (0, 1), got {rbp_ps}")
    levels = _at_least_one_column(judged.gains)  # integer rels, for table look-ups
    gains, ideal = levels.astype(np.float64), _at_least_one_column(judged.ideal).astype(np.float64)
    per_query = _cutoff_metrics(gains, ideal, judged.n_relevant, ks)
    per_query["err"] = _err(levels, judged.max_rel)
    rbp = _rbp(gains, judged.max_rel, rbp_ps)
    for column, p in enumerate(rbp_ps):
        per_query[metric_name("rbp", p)] = rbp[:, column]
    return MetricTable(judged.queries, per_query, ks, rbp_ps)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise (broadcast), 0 where the denominator is 0."""
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape), dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _at_least_one_column(ranked: np.ndarray) -> np.ndarray:
    """(Q, K) with at least one (zero) column, so 'nothing retrieved anywhere' needs no branch."""
    return ranked if ranked.shape[1] else np.zeros((ranked.shape[0], 1), dtype=ranked.dtype)


def _sums_up_to(values: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """(Q, len(ks)) sums of values[:, :k] for each k (all of a row when k > K).

    One `np.add.reduceat` over the segments between cutoffs, then a running total over the few segments;
    no BLAS (its threads stall on a busy machine) and no (Q, K) running total."""
    width = values.shape[1]
    ends = np.minimum(ks, width)
    starts = np.unique(np.concatenate(([0], ends)))
    starts = starts[starts < width]
    totals = np.cumsum(np.add.reduceat(values, starts, axis=1), axis=1)
    return totals[:, np.searchsorted(starts, ends) - 1]


def _discounts(length: int) -> np.ndarray:
    """1 / log2(r + 1) for ranks r = 1..length."""
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def _cutoff_metrics(
    gains: np.ndarray, ideal: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """ndcg/map/mrr/recall/precision at each k, from per-rank terms summed up to every k (Q, len(ks))."""
    # In-place arithmetic on few (Q, K) buffers: fresh pages cost more than the arithmetic itself.
    width = gains.shape[1]
    is_relevant = gains >= 1
    first_hit = np.where(is_relevant.any(axis=1), is_relevant.argmax(axis=1) + 1, 0)
    relevant = is_relevant.astype(np.float64)
    hits_at = _sums_up_to(relevant, ks)
    precision_terms = np.cumsum(relevant, axis=1)  # hits up to r, then hits / r where rank r is relevant
    precision_terms *= relevant
    precision_terms /= np.arange(1, width + 1)
    precision_sums_at = _sums_up_to(precision_terms, ks)
    dcg_at = _sums_up_to(np.multiply(gains, _discounts(width), out=relevant), ks)
    ideal_dcg_at = _sums_up_to(ideal * _discounts(ideal.shape[1]), ks)
    reciprocal_rank = _divide(np.ones(len(gains)), first_hit)
    n_relevant = n_relevant.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for i, k in enumerate(ks):
        out[metric_name("ndcg", k)] = _divide(dcg_at[:, i], ideal_dcg_at[:, i])
        out[metric_name("map", k)] = _divide(precision_sums_at[:, i], n_relevant)
        out[metric_name("mrr", k)] = np.where(first_hit <= k, reciprocal_rank, 0.0)
        out[metric_name("recall", k)] = _divide(hits_at[:, i], n_relevant)
        out[metric_name("precision", k)] = hits_at[:, i] / k
    return out


def _err(levels: np.ndarray, max_rel: np.ndarray) -> np.ndarray:
    """ERR = Σ_r p_r · R_r / r with p_r = Π_{i<r} (1 − R_i): one cumprod, then a product with 1/r.

    levels (Q, K) integer rels in rank order; max_rel (Q,) integer."""
    # R = 2^(g − max_rel) − 2^(−max_rel): both powers are exact and never overflow, so R is the protocol's
    # (2^g − 1) / 2^max_rel correctly rounded, for any rel.
    stop = np.exp2(levels - max_rel[:, None], dtype=np.float64)
    stop -= np.exp2(-max_rel.astype(np.float64))[:, None]
    reach = np.cumprod(np.subtract(1.0, stop), axis=1)
    inverse_rank = 1.0 / np.arange(2, levels.shape[1] + 1)
    return stop[:, 0] + np.einsum("qr,qr,r->q", reach[:, :-1], stop[:, 1:], inverse_rank)


def _rbp(gains: np.ndarray, max_rel: np.ndarray, ps: tuple[float, ...]) -> np.ndarray:
    """(Q, len(ps)) rank-biased precision with graded gains g / max_rel: (1 − p) · Σ_r g_r p^(r−1) / max_rel."""
    weights = np.asarray(ps)[None, :] ** np.arange(gains.shape[1])[:, None] * (1.0 - np.asarray(ps))
    return _divide(np.einsum("qr,rp->qp", gains, weights), max_rel.astype(np.float64)[:, None])
