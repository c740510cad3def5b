"""The evaluation protocol's relevance scale, query sample and ground truth (GCL-PROTOCOL.md §4.1–4.3).

A small local equivalent for the trainer's evaluation hook. `gcl_vectordb.evaluation.protocol`
(`rescale_relevance`, `sample_queries`, `build_qrels`) is the project's reference implementation; once
it is on main, the hook should call it and this module should go.

    rel     = int((w − min w) / (max w − min w) · 99 + 1)      over the whole split; all 1 if w is constant
    queries = group by query, sum rel, sample(n = top_q, weights = summed rel, replace = False,
              random_state = 1) (pandas semantics), sorted by summed rel descending
    qrels   = per query: its rows by rel descending, the first top_k, {product_id: rel}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_RANDOM_STATE = 1


def rescale_relevance(weights: np.ndarray) -> np.ndarray:
    """Split weights (n,) → integer relevance 1..100 (int64) by the protocol's linear rescaling."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = float(w.min()), float(w.max())
    if high == low:
        return np.ones(w.shape, dtype=np.int64)
    return ((w - low) / (high - low) * 99 + 1).astype(np.int64)  # astype truncates, as int() does


def sample_queries(frame: pd.DataFrame, top_q: int, *, rel_column: str = "rel") -> list[str]:
    """The protocol's test queries of `frame` (columns query, rel): a weighted sample without replacement.

    `Series.sample(n, weights, replace=False, random_state=1)` is
    `RandomState(1).choice(len, n, replace=False, p=weights / Σ weights)`; pandas ≥ 2.2 refuses when
    n · max p > 1 (n close to the number of queries, as in a small held-out set), so the choice is
    made here directly: the same sample wherever pandas accepts, older pandas' sample elsewhere.
    """
    summed = frame.groupby("query", sort=True)[rel_column].sum()
    n = min(top_q, len(summed))
    weights = summed.to_numpy(dtype=np.float64)
    rows = np.random.RandomState(SAMPLE_RANDOM_STATE).choice(len(summed), size=n, replace=False,
                                                             p=weights / weights.sum())
    return summed.iloc[rows].sort_values(ascending=False, kind="stable").index.tolist()


def build_qrels(
    frame: pd.DataFrame, queries: list[str], top_k: int, *, rel_column: str = "rel"
) -> dict[str, dict[str, int]]:
    """Ground truth {query: {product_id: rel}} of `queries`: each query's top_k rows by rel descending."""
    chosen = frame[frame["query"].isin(set(queries))]
    ordered = chosen.sort_values(rel_column, ascending=False, kind="stable")
    qrels: dict[str, dict[str, int]] = {query: {} for query in queries}
    for query, product_id, rel in zip(
        ordered["query"].tolist(), ordered["product_id"].tolist(), ordered[rel_column].tolist(), strict=True
    ):
        judged = qrels[query]
        if len(judged) < top_k and product_id not in judged:
            judged[product_id] = int(rel)
    return qrels
