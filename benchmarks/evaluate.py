"""Evaluation benchmarks: `python benchmarks/evaluate.py [--quick] [--section NAME ...]`.

Each section measures our code against a baseline in the same process, prints the ratio and writes
benchmarks/results/evaluate_<section>.json and .md (`.quick.` files under --quick, git-ignored).

Sections
  metrics     metric computation for Q queries × N results against pytrec_eval (NDCG/MAP/MRR/recall/P)
              + per-query ERR/RBP loops, on the same run; values must agree to 1e-9. Ours: the path
              `evaluate` takes — (doc, score) pairs in retrieval order → judge_run → compute_metrics —
              and, for comparison, the same on shuffled pairs and on ranked doc ids.
              Full size 2000 × 1000, --quick 200 × 1000.
  end_to_end  `evaluate --split all` on the demo-sized synthetic dataset (3000 products, 400 queries,
              gcl-tiny ONNX bundle, embedded store), time split into protocol, embedding, search and
              metrics; baselines in the same process on the same queries and vectors: numpy brute force
              instead of the store's exact search, pytrec_eval + ERR/RBP loops instead of our metrics.
              --quick: 300 products, 60 queries, gcl-micro.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytrec_eval

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # measure this checkout, not an installed copy

from benchmarks._results import write_results  # noqa: E402
from exporters import ExportConfig, export_bundle  # noqa: E402
from gcl_vectordb.data import open_dataset  # noqa: E402
from gcl_vectordb.data.synth import SynthConfig, synthesize  # noqa: E402
from gcl_vectordb.encoders import l2_normalize, load_encoder  # noqa: E402
from gcl_vectordb.evaluation import DEFAULT_KS, DEFAULT_RBP_PS, Run, compute_metrics, judge_run  # noqa: E402
from gcl_vectordb.evaluation.bruteforce import corpus_vectors  # noqa: E402
from gcl_vectordb.evaluation.protocol import prepare_split  # noqa: E402
from gcl_vectordb.evaluation.runner import EvalConfig, embed_queries, evaluate, retrieve, score_run  # noqa: E402
from gcl_vectordb.ingest import IngestConfig  # noqa: E402
from gcl_vectordb.ingest import ingest_dataset as run_ingest  # noqa: E402
from gcl_vectordb.progress import NULL_PROGRESS  # noqa: E402
from gcl_vectordb.store import open_store  # noqa: E402
from gcl_vectordb.topk import exact_run  # noqa: E402
from tests.metric_reference import (  # noqa: E402
    err_rbp_reference,
    pytrec_measures,
    pytrec_per_query,
    trec_sorted,
)

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
        ("judge_run + compute_metrics, (doc, score) pairs in retrieval order (evaluate's path)",
         s["ours_scored_pairs"]),
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
        f"Speed-up on evaluate's path: **{result['speedup']:.1f}×** (shuffled pairs "
        f"{result['speedup_shuffled_pairs']:.1f}×, ranked ids {result['speedup_ranked_ids']:.1f}×). "
        f"Goal ≥ {GOAL_SPEEDUP:g}×. Largest per-query difference: "
        f"{result['max_abs_difference']:.2e} (goal ≤ {TOLERANCE:g}). Goal met: {'yes' if result['goal_met'] else 'no'}.",
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


def end_to_end(quick: bool) -> dict[str, Any]:
    """Synthesise, export, ingest (the real pipeline), then `evaluate` every split; baselines on the same run."""
    size = {"products": 300, "queries": 60, "image_size": 32} if quick else {"products": 3000, "queries": 400}
    model = "gcl-micro" if quick else "gcl-tiny"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        setup = {}
        setup["synthesize"], _ = best_of(1, lambda: synthesize(SynthConfig(out=tmp / "data", seed=0, **size)))
        setup["export"], _ = best_of(1, lambda: export_bundle(ExportConfig(out=tmp / "model", model_ref=model)))
        ingest_config = IngestConfig(collection="gs10m", data=tmp / "data", model_ref=str(tmp / "model"),
                                     store=str(tmp / "store"), workers=0, build_index=False)
        setup["ingest"], _ = best_of(1, lambda: run_ingest(ingest_config))
        config = EvalConfig(splits=("all",), collection="gs10m", store=str(tmp / "store"))
        wall, report = best_of(1, lambda: evaluate(config))
        baselines = {split.split: split_baselines(config, tmp / "data", split.split) for split in report.splits}
    splits = {
        s.split: {"queries": s.n_queries, "corpus": s.corpus, "seconds": s.to_dict()["seconds"],
                  "ndcg@10": s.headline()["ndcg@10"], "baseline": baselines[s.split]}
        for s in report.splits
    }
    stages = ("prepare", "embed", "search", "metrics")
    totals = {stage: sum(v["seconds"][stage] for v in splits.values()) for stage in stages}
    return {
        "dataset": size | {"model": model}, "setup_seconds": setup, "evaluate_seconds": wall,
        "stage_seconds": totals, "splits": splits,
        "baseline_seconds": {key: sum(v["baseline"][key] for v in splits.values())
                             for key in ("numpy_search", "ours_metrics", "pytrec_eval_plus_loops")},
    }


def split_baselines(config: Any, data: Path, split: str) -> dict[str, float]:
    """On one split's queries and vectors: numpy brute-force top-k over the stored vectors (in memory),
    and pytrec_eval + ERR/RBP loops against our judging + metrics on the store's run."""
    dataset = open_dataset(data)
    prepared = prepare_split(dataset, split, top_q=config.top_q, top_k=config.k)
    with open_store(config.store) as store:
        encoder = load_encoder(store.get_record(config.collection).model_ref)
        vectors = embed_queries(encoder, prepared.queries, config.batch_size, NULL_PROGRESS)
        ids, matrix = corpus_vectors(store, config.collection, dataset, prepared.corpus, config.vector)
        run = retrieve(store, config.collection, prepared, vectors, config, exact=True)
    t_numpy, _ = best_of(3, lambda: exact_run(prepared.queries, l2_normalize(vectors), ids, matrix, config.k))
    t_ours, _ = best_of(3, lambda: score_run(prepared, run, config.k))
    qrels = {q: dict(j) for q, j in prepared.qrels.items()}

    def baseline() -> None:
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS))
        evaluator.evaluate({q: dict(p) for q, p in run.items()})
        err_rbp_reference(run, qrels, list(prepared.queries), DEFAULT_RBP_PS, config.k)

    t_base, _ = best_of(3, baseline)
    return {"numpy_search": t_numpy, "ours_metrics": t_ours, "pytrec_eval_plus_loops": t_base}


def end_to_end_markdown(result: dict[str, Any]) -> str:
    d = result["dataset"]
    lines = [
        f"# End to end: `evaluate --split all`, {d['products']} products, {d['queries']} queries, {d['model']}",
        "",
        "| split | queries | prepare s | embed s | search s | metrics s | total s | numpy search s | "
        "pytrec_eval + loops s | NDCG@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in result["splits"].items():
        sec, base = v["seconds"], v["baseline"]
        lines.append(f"| {name} | {v['queries']} | {sec['prepare']:.3f} | {sec['embed']:.3f} | {sec['search']:.3f} | "
                     f"{sec['metrics']:.4f} | {sec['total']:.3f} | {base['numpy_search']:.3f} | "
                     f"{base['pytrec_eval_plus_loops']:.4f} | {v['ndcg@10']:.4f} |")
    t, b = result["stage_seconds"], result["baseline_seconds"]
    lines += [
        "",
        f"evaluate wall time {result['evaluate_seconds']:.2f} s (model load included): protocol {t['prepare']:.2f} s, "
        f"embedding {t['embed']:.2f} s, search {t['search']:.2f} s (store round trips, hits → (product, score) pairs), "
        f"metrics {t['metrics']:.3f} s. Metrics vs pytrec_eval + ERR/RBP loops on the same runs: "
        f"{b['pytrec_eval_plus_loops'] / max(b['ours_metrics'], 1e-12):.1f}×. Store exact search vs numpy brute "
        f"force over in-memory vectors: {t['search'] / max(b['numpy_search'], 1e-12):.1f}× the time.",
        f"Setup (not part of the figure): synthesize {result['setup_seconds']['synthesize']:.1f} s, export "
        f"{result['setup_seconds']['export']:.1f} s, ingest {result['setup_seconds']['ingest']:.1f} s.",
    ]
    return "\n".join(lines) + "\n"


def run_end_to_end_section(quick: bool) -> tuple[dict[str, Any], str]:
    result = end_to_end(quick)
    t = result["stage_seconds"]
    print(f"end to end: evaluate {result['evaluate_seconds']:.2f} s — protocol {t['prepare']:.2f}, embed "
          f"{t['embed']:.2f}, search {t['search']:.2f}, metrics {t['metrics']:.3f} s")
    return result, end_to_end_markdown(result)


# name → function(quick) returning (JSON result, Markdown report).
SECTIONS: dict[str, Callable[[bool], tuple[dict[str, Any], str]]] = {
    "metrics": run_metrics_section,
    "end_to_end": run_end_to_end_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes that only prove the script works")
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS), help="default: all")
    args = parser.parse_args(argv)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "numpy": np.__version__}
    for name in args.section or list(SECTIONS):
        result, markdown = SECTIONS[name](args.quick)
        record = {"section": name, "quick": args.quick, "machine": machine, "result": result}
        write_results(f"evaluate_{name}", record, markdown, full_size=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
