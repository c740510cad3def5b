"""Evaluation benchmarks: `python benchmarks/evaluate.py [--quick] [--section NAME ...]`.

Each section measures our code against a baseline in the same process, prints the ratio and writes
benchmarks/results/evaluate_<section>.json and .md.

Sections
  metrics   metric computation for Q queries × N results: judge_run + compute_metrics against
            pytrec_eval (NDCG/MAP/MRR/recall/P) + per-query ERR/RBP loops, on the same run; values
            must agree to 1e-9. Full size 2000 × 1000, --quick 200 × 1000.
  (add further sections, e.g. the end-to-end `evaluate` run, to SECTIONS below.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # measure this checkout, not an installed copy

from gcl_vectordb.evaluation import DEFAULT_KS, DEFAULT_RBP_PS, Run, compute_metrics, judge_run  # noqa: E402
from tests.metric_reference import (  # noqa: E402
    err_rbp_reference,
    pytrec_measures,
    pytrec_per_query,
    trec_sorted,
)

RESULTS = REPO_ROOT / "benchmarks" / "results"
GOAL_SPEEDUP = 10.0
TOLERANCE = 1e-9


def best_of(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """Smallest wall time in seconds over `repeats` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def synthetic_case(
    n_queries: int, n_results: int, seed: int = 0, n_products: int = 100_000
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, dict[str, int]]]:
    """A protocol-shaped case: per query n_results judged products with rel 1..100, and a retrieved
    list of n_results (product number, cosine) in retrieval order (score descending, as Qdrant returns
    them), half of them judged. Scores are float32 like Qdrant's; 2 % repeat their neighbour's score
    (exact ties, as near-duplicate products produce), left in ascending-id order for judge_run to re-break."""
    rng = np.random.default_rng(seed)
    retrieved, qrels = [], {}
    for i in range(n_queries):
        products = rng.choice(n_products, size=2 * n_results, replace=False)
        judged, unjudged = products[:n_results], products[n_results:]
        qrels[f"q{i}"] = {f"p{p}": int(r) for p, r in zip(judged, rng.integers(1, 101, n_results), strict=True)}
        docs = np.concatenate((judged[: n_results // 2], unjudged[: n_results - n_results // 2]))
        scores = rng.uniform(-1.0, 1.0, n_results).astype(np.float32)
        tied = np.flatnonzero(rng.random(n_results - 1) < 0.02)
        scores[tied + 1] = scores[tied]
        order = np.lexsort((docs, -scores))
        retrieved.append((docs[order], scores[order]))
    return retrieved, qrels


def as_pairs(retrieved: list[tuple[np.ndarray, np.ndarray]], shuffle_seed: int | None = None) -> Run:
    """The run as a caller builds it from results (fresh objects in list order), optionally shuffled."""
    rng = np.random.default_rng(shuffle_seed)
    run = {}
    for i, (docs, scores) in enumerate(retrieved):
        order = rng.permutation(len(docs)) if shuffle_seed is not None else np.arange(len(docs))
        run[f"q{i}"] = [(f"p{d}", float(s)) for d, s in zip(docs[order], scores[order], strict=True)]
    return run


def metric_speed(n_queries: int, n_results: int, repeats: int) -> dict[str, Any]:
    """Time our metrics against pytrec_eval + per-query ERR/RBP on the same run; check the values agree."""
    import pytrec_eval

    retrieved, qrels = synthetic_case(n_queries, n_results)
    queries = list(qrels)
    run, shuffled = as_pairs(retrieved), as_pairs(retrieved, shuffle_seed=1)
    ranked = {qid: [f"{doc}" for doc in trec_sorted(pairs)] for qid, pairs in run.items()}

    def ours(this_run: Any) -> Callable[[], Any]:
        return lambda: compute_metrics(judge_run(this_run, qrels, depth=n_results))

    def pytrec() -> dict[str, list[float]]:
        # pytrec_eval takes {qid: {doc: score}}: building that from the run is part of using it.
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS))
        measured = evaluator.evaluate({qid: dict(pairs) for qid, pairs in run.items()})
        return pytrec_per_query(measured, queries, DEFAULT_KS)

    judged = judge_run(run, qrels, depth=n_results)
    t_ours, table = best_of(repeats, ours(run))
    t_shuffled, table_shuffled = best_of(repeats, ours(shuffled))
    t_ranked, _ = best_of(repeats, ours(ranked))
    t_judge, _ = best_of(repeats, lambda: judge_run(run, qrels, depth=n_results))
    t_compute, _ = best_of(repeats, lambda: compute_metrics(judged))
    t_pytrec, reference = best_of(repeats, pytrec)
    t_loops, loops = best_of(
        repeats, lambda: err_rbp_reference(run, qrels, queries, DEFAULT_RBP_PS, n_results)
    )
    t_base, reference = t_pytrec + t_loops, reference | loops
    max_diff = max(
        float(np.max(np.abs(ours_table.per_query[name] - np.asarray(values))))
        for name, values in reference.items()
        for ours_table in (table, table_shuffled)
    )
    return {
        "queries": n_queries,
        "results_per_query": n_results,
        "metrics_compared": len(reference),
        "repeats": repeats,
        "seconds": {
            "ours_scored_pairs": t_ours,
            "ours_scored_pairs_shuffled": t_shuffled,
            "ours_ranked_ids": t_ranked,
            "ours_judge_run_only": t_judge,
            "ours_compute_metrics_only": t_compute,
            "baseline_pytrec_eval": t_pytrec,
            "baseline_err_rbp_loops": t_loops,
            "baseline_pytrec_eval_plus_err_rbp_loops": t_base,
        },
        "speedup": t_base / t_ours,
        "speedup_shuffled_pairs": t_base / t_shuffled,
        "speedup_ranked_ids": t_base / t_ranked,
        "goal_speedup": GOAL_SPEEDUP,
        "max_abs_difference": max_diff,
        "values_equal": max_diff <= TOLERANCE,
        "goal_met": t_base / t_ours >= GOAL_SPEEDUP and max_diff <= TOLERANCE,
    }


def metric_speed_markdown(result: dict[str, Any]) -> str:
    s = result["seconds"]
    rows = [
        ("judge_run + compute_metrics, (doc, score) pairs in retrieval order", s["ours_scored_pairs"]),
        ("judge_run + compute_metrics, (doc, score) pairs shuffled", s["ours_scored_pairs_shuffled"]),
        ("judge_run + compute_metrics, ranked doc ids", s["ours_ranked_ids"]),
        ("  judge_run alone (pairs)", s["ours_judge_run_only"]),
        ("  compute_metrics alone", s["ours_compute_metrics_only"]),
        ("baseline: pytrec_eval (run → dicts, evaluator, evaluate)", s["baseline_pytrec_eval"]),
        ("baseline: per-query ERR/RBP loops (trec order, look-ups, sums)", s["baseline_err_rbp_loops"]),
        ("baseline total", s["baseline_pytrec_eval_plus_err_rbp_loops"]),
    ]
    lines = [
        f"# Metric computation: {result['queries']} queries × {result['results_per_query']} results",
        "",
        f"{result['metrics_compared']} per-query metrics (NDCG/MAP/MRR/recall/P @ {list(DEFAULT_KS)}, "
        f"ERR, RBP @ {list(DEFAULT_RBP_PS)}); best of {result['repeats']}.",
        "",
        "| what | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.4f} |" for name, seconds in rows),
        "",
        f"Speed-up: **{result['speedup']:.1f}×** (pairs in retrieval order), "
        f"{result['speedup_shuffled_pairs']:.1f}× (shuffled pairs), {result['speedup_ranked_ids']:.1f}× (ranked ids); "
        f"goal ≥ {GOAL_SPEEDUP:g}×. Largest per-query difference: {result['max_abs_difference']:.2e} "
        f"(goal ≤ {TOLERANCE:g}). Goal met: {'yes' if result['goal_met'] else 'no'}.",
    ]
    return "\n".join(lines) + "\n"


def run_metrics_section(quick: bool) -> tuple[dict[str, Any], str]:
    result = metric_speed(200 if quick else 2000, 1000, repeats=5)
    print(
        f"metrics: ours {result['seconds']['ours_scored_pairs']:.3f} s vs baseline "
        f"{result['seconds']['baseline_pytrec_eval_plus_err_rbp_loops']:.3f} s → {result['speedup']:.1f}× "
        f"(goal {GOAL_SPEEDUP:g}×), max |Δ| {result['max_abs_difference']:.1e}"
    )
    return result, metric_speed_markdown(result)


# name → function(quick) returning (JSON result, Markdown report). Add the end-to-end section here.
SECTIONS: dict[str, Callable[[bool], tuple[dict[str, Any], str]]] = {
    "metrics": run_metrics_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes that only prove the script works")
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS), help="default: all")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "numpy": np.__version__}
    for name in args.section or list(SECTIONS):
        result, markdown = SECTIONS[name](args.quick)
        record = {"section": name, "quick": args.quick, "machine": machine, "result": result}
        (RESULTS / f"evaluate_{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        (RESULTS / f"evaluate_{name}.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
