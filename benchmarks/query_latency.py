"""Query latency in-process: the embedded engine (exact and HNSW) vs qdrant-client's local mode.

    python benchmarks/query_latency.py            # 10k and 100k products (optimize() at 100k: minutes)
    python benchmarks/query_latency.py --quick    # 2k products: proves the script works

Data are clustered (products of one cluster share a centre), as real embeddings are; HNSW recall on
pure random vectors would be poor and unrepresentative. Every arm runs through the gcl-vdb store API
(`open_store(...).search`) on the same vectors and queries, `fused` mode, top-10. The baseline is
qdrant-client local mode (pure Python, exact); the goal is the embedded HNSW ≥ 30× faster at 100k.
Writes benchmarks/results/query_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gcl_vectordb.store import CollectionRecord, SearchRequest, VectorStore, open_store, product_payload

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench"
GOAL = 30.0


def clustered_corpus(n: int, dim: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Unit vectors `(n, dim)` for image / title / fused around n/50 cluster centres, and queries' centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 50, 8), dim)).astype(np.float32)
    member = rng.integers(0, len(centres), n)

    def around(noise: float) -> np.ndarray:
        x = centres[member] + noise * rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    image, title = around(0.6), around(0.8)
    fused = 0.5 * image + 0.5 * title
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    return {"image": image, "title": title, "fused": fused}, centres


def queries_for(centres: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Text-like queries `(count, dim)`: a cluster centre plus more noise than any product has."""
    rng = np.random.default_rng(seed + 1)
    picked = centres[rng.integers(0, len(centres), count)]
    return (picked + 0.9 * rng.normal(size=picked.shape)).astype(np.float32)


def load(store: VectorStore, vectors: dict[str, np.ndarray]) -> float:
    """Create the collection, upsert all products; returns points per second."""
    n, dim = vectors["fused"].shape
    store.create_collection(CollectionRecord(NAME, model_ref="synthetic", dim=dim), bulk_load=True)
    ids = [f"p{i}" for i in range(n)]
    payloads = [product_payload(p, f"product {p}", None, 1 + i % 2) for i, p in enumerate(ids)]
    started = time.perf_counter()
    for start in range(0, n, 5000):
        stop = start + 5000
        store.upsert_arrays(NAME, ids[start:stop], {k: v[start:stop] for k, v in vectors.items()}, None,
                            payloads[start:stop])
    return n / (time.perf_counter() - started)


def latencies(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[dict[str, float], list]:
    """p50 / p99 / mean of single-query latency in milliseconds, and the results."""
    for q in queries[:3]:  # warm caches and lazy initialisation
        search(q)
    times, results = [], []
    for q in queries:
        started = time.perf_counter()
        results.append(search(q))
        times.append((time.perf_counter() - started) * 1000)
    stats = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
             "mean_ms": float(np.mean(times)), "queries": len(times)}
    return stats, results


def batch_qps(store: VectorStore, requests: list[SearchRequest]) -> float:
    started = time.perf_counter()
    store.search_batch(NAME, requests)
    return len(requests) / (time.perf_counter() - started)


def recall_at_10(approximate: list, exact: list) -> float:
    hits = [len({h.product_id for h in a} & {h.product_id for h in e}) / max(len(e), 1)
            for a, e in zip(approximate, exact, strict=True)]
    return float(np.mean(hits))


def run_embedded(vectors: dict[str, np.ndarray], queries: np.ndarray, ef: int, root: Path) -> dict[str, Any]:
    # Tiny thresholds: the HNSW graph is built (and used) at every size, not only above 10 MB segments.
    with open_store(root / "embedded", indexing_threshold_kb=1, full_scan_threshold_kb=1) as store:
        upsert_rate = load(store, vectors)
        started = time.perf_counter()
        store.optimize(NAME)
        optimize_s = time.perf_counter() - started
        exact, exact_hits = latencies(lambda q: store.search(NAME, SearchRequest(q, exact=True)), queries)
        hnsw, hnsw_hits = latencies(lambda q: store.search(NAME, SearchRequest(q, hnsw_ef=ef)), queries)
        exact["batch_qps"] = batch_qps(store, [SearchRequest(q, exact=True) for q in queries])
        hnsw["batch_qps"] = batch_qps(store, [SearchRequest(q, hnsw_ef=ef) for q in queries])
        return {"upsert_points_per_s": upsert_rate, "optimize_s": optimize_s,
                "indexed_vectors": store.indexed_vectors(NAME), "exact": exact, "hnsw": hnsw,
                "recall_at_10_hnsw_vs_exact": recall_at_10(hnsw_hits, exact_hits), "_exact_hits": exact_hits}


def run_local_mode(vectors: dict[str, np.ndarray], queries: np.ndarray) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]ocal mode.*")  # "not recommended above 20k points"
        with open_store(":memory:") as store:
            upsert_rate = load(store, vectors)
            stats, hits = latencies(lambda q: store.search(NAME, SearchRequest(q, exact=True)), queries)
    return {"upsert_points_per_s": upsert_rate, "exact": stats, "_hits": hits}


def run_size(n: int, dim: int, n_queries: int, n_local: int, ef: int, seed: int) -> dict[str, Any]:
    vectors, centres = clustered_corpus(n, dim, seed)
    queries = queries_for(centres, n_queries, seed)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = run_embedded(vectors, queries, ef, Path(tmp))
    local = run_local_mode(vectors, queries[:n_local])
    agree = recall_at_10(local.pop("_hits"), embedded.pop("_exact_hits")[:n_local])
    result = {
        "points": n, "embedded": embedded, "local_mode": local,
        "exact_agreement_embedded_vs_local": agree,
        "speedup_hnsw_vs_local_p50": local["exact"]["p50_ms"] / embedded["hnsw"]["p50_ms"],
        "speedup_exact_vs_local_p50": local["exact"]["p50_ms"] / embedded["exact"]["p50_ms"],
    }
    print(f"{n:>7,} points: embedded exact p50 {embedded['exact']['p50_ms']:.2f} ms, HNSW p50 "
          f"{embedded['hnsw']['p50_ms']:.2f} ms (recall@10 {embedded['recall_at_10_hnsw_vs_exact']:.3f}), "
          f"local mode p50 {local['exact']['p50_ms']:.1f} ms → HNSW {result['speedup_hnsw_vs_local_p50']:.0f}× "
          f"/ exact {result['speedup_exact_vs_local_p50']:.0f}× faster; upsert "
          f"{embedded['upsert_points_per_s']:,.0f} points/s, optimize {embedded['optimize_s']:.1f} s", flush=True)
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Query latency: embedded Qdrant engine vs qdrant-client local mode",
        "",
        f"{report['config']['dim']}-d clustered vectors (3 named vectors per product), `fused` top-10, "
        f"{report['config']['queries']} queries (local mode: {report['config']['local_queries']}), "
        f"HNSW ef {report['config']['hnsw_ef']}; {report['machine']['cpus']} CPUs. Goal: HNSW ≥ {GOAL:.0f}× "
        "faster than local mode at 100k.",
        "",
        "| points | embedded exact p50 / p99 (ms) | embedded HNSW p50 / p99 (ms) | HNSW recall@10 | "
        "local mode p50 / p99 (ms) | speed-up HNSW / exact | batch q/s exact / HNSW | upsert points/s | "
        "optimize (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        e, h, lm = r["embedded"]["exact"], r["embedded"]["hnsw"], r["local_mode"]["exact"]
        lines.append(
            f"| {r['points']:,} | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {h['p50_ms']:.2f} / {h['p99_ms']:.2f} "
            f"| {r['embedded']['recall_at_10_hnsw_vs_exact']:.3f} | {lm['p50_ms']:.1f} / {lm['p99_ms']:.1f} "
            f"| {r['speedup_hnsw_vs_local_p50']:.0f}× / {r['speedup_exact_vs_local_p50']:.0f}× "
            f"| {e['batch_qps']:,.0f} / {h['batch_qps']:,.0f} | {r['embedded']['upsert_points_per_s']:,.0f} "
            f"| {r['embedded']['optimize_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k products, few queries: a smoke run")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated product counts")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--local-queries", type=int, default=50, help="local mode is slow: fewer queries")
    parser.add_argument("--hnsw-ef", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries, n_local = (60, 20) if args.quick else (args.queries, args.local_queries)
    results = [run_size(n, args.dim, n_queries, n_local, args.hnsw_ef, args.seed) for n in sizes]
    report = {
        "benchmark": "query_latency", "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"dim": args.dim, "queries": n_queries, "local_queries": n_local, "hnsw_ef": args.hnsw_ef,
                   "limit": 10, "mode": "fused", "seed": args.seed},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "query_latency.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "query_latency.md").write_text(markdown(report), encoding="utf-8")
    print(f"wrote {args.out / 'query_latency.json'} and .md")


if __name__ == "__main__":
    main()
