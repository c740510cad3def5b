"""Independent per-query references for the metric cross-checks (tests and benchmarks/evaluate.py).

Written from the protocol text (docs/protocol.md, "Metrics") and trec_eval's documented ranking, as plain
Python loops, deliberately sharing no code with `gcl_vectordb.evaluation`.
"""

from __future__ import annotations

import numpy as np

PYTREC_PREFIX = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P"}


def trec_sorted(pairs: list[tuple[str, float]]) -> list[str]:
    """Doc ids in trec_eval order: score (as a C float) descending, then doc id descending."""
    as_float32 = np.array([score for _, score in pairs], dtype=np.float32).tolist()
    return [doc for _, doc in sorted(zip(as_float32, (doc for doc, _ in pairs), strict=True), reverse=True)]


def err_reference(rels: list[int], max_rel: int) -> float:
    """ERR = Σ_r p · R_r / r, R = (2^rel − 1) / 2^max_rel, p starts at 1 and p ← p · (1 − R_r)."""
    if max_rel <= 0:
        return 0.0
    p, total = 1.0, 0.0
    for rank, rel in enumerate(rels, start=1):
        stop = (2**rel - 1) / 2**max_rel
        total += p * stop / rank
        p *= 1 - stop
    return total


def rbp_reference(rels: list[int], max_rel: int, p: float) -> float:
    """RBP_p = (1 − p) · Σ_r (rel_r / max_rel) · p^(r − 1)."""
    if max_rel <= 0:
        return 0.0
    return (1 - p) * sum(rel / max_rel * p ** (rank - 1) for rank, rel in enumerate(rels, start=1))


def err_rbp_reference(
    run: dict[str, list[tuple[str, float]]],
    qrels: dict[str, dict[str, int]],
    queries: list[str],
    rbp_ps: tuple[float, ...],
    depth: int,
) -> dict[str, list[float]]:
    """Per-query ERR and RBP_p over `queries`, each list ranked by `trec_sorted` and cut at `depth`."""
    out: dict[str, list[float]] = {"err": []} | {f"rbp@{p:g}": [] for p in rbp_ps}
    for qid in queries:
        judgments = qrels.get(qid, {})
        rels = [judgments.get(doc, 0) for doc in trec_sorted(run.get(qid, []))[:depth]]
        max_rel = max(judgments.values(), default=0)
        out["err"].append(err_reference(rels, max_rel))
        for p in rbp_ps:
            out[f"rbp@{p:g}"].append(rbp_reference(rels, max_rel, p))
    return out


def pytrec_measures(ks: tuple[int, ...]) -> set[str]:
    cutoffs = ",".join(map(str, ks))
    return {"recip_rank"} | {f"{name}.{cutoffs}" for name in PYTREC_PREFIX.values()}


def pytrec_per_query(
    pytrec_results: dict[str, dict[str, float]], queries: list[str], ks: tuple[int, ...]
) -> dict[str, list[float]]:
    """pytrec_eval's per-query values under our metric names; a query it left out (no run) scores 0.

    mrr@k comes from recip_rank: 1 / r₁ when the first relevant rank r₁ ≤ k, else 0.
    """
    out: dict[str, list[float]] = {}
    for qid in queries:
        measured = pytrec_results.get(qid, {})
        rr = measured.get("recip_rank", 0.0)
        for k in ks:
            for ours, theirs in PYTREC_PREFIX.items():
                out.setdefault(f"{ours}@{k}", []).append(measured.get(f"{theirs}_{k}", 0.0))
            out.setdefault(f"mrr@{k}", []).append(rr if rr > 0 and round(1 / rr) <= k else 0.0)
    return out


def random_case(
    seed: int,
    n_queries: int = 60,
    max_judged: int = 40,
    max_retrieved: int = 60,
    universe: int = 200,
    max_rel: int = 100,
) -> tuple[dict[str, list[tuple[str, float]]], dict[str, dict[str, int]]]:
    """A random run and qrels with the awkward cases mixed in.

    Scores come from a coarse grid (many ties) or are continuous; rels are 0..max_rel with many zeros;
    some queries retrieve nothing, are missing from the run, have no judgments or only rel-0 ones, and
    the run holds queries the qrels lack. Doc ids "d<n>" sort differently as strings than as numbers.
    """
    rng = np.random.default_rng(seed)
    run: dict[str, list[tuple[str, float]]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(n_queries):
        qid = f"q{i}"
        judged = rng.choice(universe, size=int(rng.integers(0, max_judged + 1)), replace=False)
        rels = np.where(rng.random(len(judged)) < 0.3, 0, rng.integers(1, max_rel + 1, len(judged)))
        if i % 11 == 3:
            rels[:] = 0
        qrels[qid] = {f"d{d}": int(r) for d, r in zip(judged, rels, strict=True)}
        if i % 13 == 5:
            continue  # missing from the run
        retrieved = rng.choice(universe, size=int(rng.integers(0, max_retrieved + 1)), replace=False)
        if i % 2:
            scores = rng.integers(0, 6, len(retrieved)) / 4.0
        else:
            scores = rng.normal(size=len(retrieved))
        run[qid] = [(f"d{d}", float(s)) for d, s in zip(retrieved, scores, strict=True)]
    run["extra-query"] = [("d1", 1.0), ("d2", 0.5)]
    return run, qrels


def pytrec_run(run: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """The run as pytrec_eval takes it (queries with nothing retrieved cannot be expressed: dropped)."""
    return {qid: dict(pairs) for qid, pairs in run.items() if pairs}
