"""Keyword and hybrid search: ranking quality on the demo's dataset and model, latency at 100k products.

    python benchmarks/hybrid.py [--quick] [--work DIR]

Quality: the demo (`run_demo`: the synthetic dataset of 3000 products and 400 queries, gcl-tiny trained
with the GCL loss, its ONNX bundle ingested into an embedded store; cached in --work), then `evaluate` on
all four splits with the same protocol (exact search, top_q 2000, k 1000, seed 1) for the dense `fused`
vector, `bm25`, `hybrid` with RRF and `hybrid` with DBSF: the headline metrics of each. Goal: hybrid
NDCG@10 ≥ max(dense, bm25) on at least 3 of the 4 splits (per fusion). Cross-check: per split, the
engine's BM25 top-10 of every test query against rank_bm25 (tests/bm25_reference.py: same tokens and
stems, k1/b, Qdrant's IDF) with the collection's fixed avg_len and with rank_bm25's own corpus-mean
length: the share of queries whose top-10 is identical up to the order of tied scores.

Latency: an embedded collection of N synthetic products (fused 512-d vectors around 64 cluster centres,
synthetic titles, BM25), HNSW built by `optimize()`; Q queries (a noisy centre and a synthetic query
text), each mode timed per query through `store.search` in the same run, interleaved: p50/p95 of dense
(`fused`, HNSW), `bm25`, `hybrid` rrf and dbsf. Goal: hybrid p50 ≤ 2 × dense p50.

Full size (the issue's), on a quiet machine, ≈ 15 min on 2 cores (demo training ≈ 3.5 min unless
cached, 100k upsert + index ≈ 4 min):

    python benchmarks/hybrid.py --work /tmp/hybrid-work

--quick: a 300-product demo trained 15 steps, 5,000 products for latency; writes hybrid.quick.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # measure this checkout, not an installed copy

from benchmarks._results import write_results  # noqa: E402
from gcl_vectordb.cli.demo_pipeline import DemoConfig, run_demo  # noqa: E402
from gcl_vectordb.data import SPLITS, open_dataset  # noqa: E402
from gcl_vectordb.data.synth.text import make_queries, make_titles  # noqa: E402
from gcl_vectordb.data.synth.vocabulary import BRANDS, SLOTS, VALUES  # noqa: E402
from gcl_vectordb.evaluation.protocol import prepare_split  # noqa: E402
from gcl_vectordb.evaluation.runner import EvalConfig, evaluate, retrieve  # noqa: E402
from gcl_vectordb.store import CollectionRecord, SearchRequest, open_store, product_payload  # noqa: E402
from tests.bm25_reference import rank_bm25_top, same_top  # noqa: E402

NAME = "hybrid"
COLLECTION = "gs10m"
ARMS: dict[str, dict[str, str]] = {
    "dense": {"vector": "fused"}, "bm25": {"vector": "bm25"},
    "hybrid-rrf": {"vector": "hybrid", "fusion": "rrf"}, "hybrid-dbsf": {"vector": "hybrid", "fusion": "dbsf"},
}
SPLIT_NAMES = tuple(s.name for s in SPLITS)
DIM = 512


def demo_store(work: Path, quick: bool) -> tuple[str, Path]:
    """The demo's store (run or resumed in work/demo) and its dataset folder; BM25 added if the
    cached collection predates it."""
    config = DemoConfig(work=work / "demo", store=str(work / "demo" / "store"),
                        **({"products": 300, "queries": 60, "max_steps": 15, "train_overrides": ("batch_size=16",)}
                           if quick else {}))
    report = run_demo(config)
    with open_store(config.store) as store:
        store.add_bm25(COLLECTION)  # a no-op unless the cached collection was made before keyword search
        data = Path(store.get_record(COLLECTION).dataset_root or "")
    print(f"demo ready in {report.seconds:.0f} s: {config.store}", flush=True)
    return config.store, data


def quality(store: str, data: Path) -> dict[str, Any]:
    """Headline metrics per arm and split, and the goal's verdicts."""
    arms = {}
    for arm, options in ARMS.items():
        report = evaluate(EvalConfig(splits=("all",), collection=COLLECTION, store=store, data=data, **options))
        arms[arm] = {s.split: s.headline() for s in report.splits}
        print(f"{arm}: " + ", ".join(f"{s} {m['ndcg@10']:.4f}" for s, m in arms[arm].items()), flush=True)
    goals = {}
    for fusion in ("hybrid-rrf", "hybrid-dbsf"):
        wins = [s for s in SPLIT_NAMES
                if arms[fusion][s]["ndcg@10"] >= max(arms["dense"][s]["ndcg@10"], arms["bm25"][s]["ndcg@10"])]
        goals[fusion] = {"splits_at_least_the_better": wins, "met": len(wins) >= 3}
    return {"arms": arms, "goal": goals}


def cross_check(store: str, data: Path, top: int = 10) -> dict[str, Any]:
    """Share of test queries whose engine BM25 top-10 equals rank_bm25's (up to ties), per split."""
    dataset = open_dataset(data)
    splits = {}
    with open_store(store) as handle:
        settings = handle.get_record(COLLECTION).bm25
        for name in SPLIT_NAMES:
            prepared = prepare_split(dataset, name, top_q=2000, top_k=top)
            products = [p for batch in dataset.iter_products(prepared.corpus, check_images=False) for p in batch]
            ids, titles = [p.product_id for p in products], [p.title for p in products]
            engine = retrieve(handle, COLLECTION, prepared, None,
                              EvalConfig(splits=(name,), collection=COLLECTION, store=store, k=top, vector="bm25"),
                              exact=True)
            row: dict[str, float] = {"queries": len(prepared.queries)}
            fixed = rank_bm25_top(titles, ids, prepared.queries, settings, top)
            row["fixed_avg_len"] = sum(same_top(engine[q], fixed[q]) for q in prepared.queries) / len(engine)
            # Another length normalisation changes every score, so only the products can be compared.
            mean = rank_bm25_top(titles, ids, prepared.queries, settings, top, fixed_avg_len=False)
            row["corpus_mean_same_products"] = sum(
                {p for p, _ in engine[q]} == {p for p, _ in mean[q]} for q in prepared.queries) / len(engine)
            splits[name] = row
            print(f"cross-check {name}: {row}", flush=True)
    fixed = min(r["fixed_avg_len"] for r in splits.values())
    return {"splits": splits, "avg_len": settings.avg_len, "goal_met": fixed >= 0.99}


def latency(products: int, queries: int, seed: int = 0) -> dict[str, Any]:
    """p50/p95 (ms) of dense, bm25 and hybrid searches on one collection, timed in the same run."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, DIM)).astype(np.float32)
    attributes = np.stack([rng.integers(0, len(VALUES[s]), products) for s in SLOTS], axis=1)
    titles = make_titles(attributes, rng.integers(0, len(BRANDS), products), rng)
    texts = make_queries(min(queries, 400), rng).texts
    with tempfile.TemporaryDirectory(prefix="hybrid-latency-") as scratch, open_store(Path(scratch) / "s") as store:
        store.create_collection(CollectionRecord("lat", model_ref="synthetic", dim=DIM))
        clock = time.perf_counter()
        for start in range(0, products, 10_000):
            stop = min(start + 10_000, products)
            fused = centres[rng.integers(0, 64, stop - start)] + 0.3 * rng.normal(size=(stop - start, DIM))
            ids = [f"p{i}" for i in range(start, stop)]
            store.upsert_arrays("lat", ids, {"fused": fused.astype(np.float32)}, None,
                                [product_payload(pid, titles[i], None, 1) for i, pid in zip(range(start, stop), ids,
                                                                                              strict=True)])
        upsert_s, clock = time.perf_counter() - clock, time.perf_counter()
        store.optimize("lat")
        index_s = time.perf_counter() - clock
        modes = {"dense": {"mode": "fused"}, "bm25": {"mode": "bm25"},
                 "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"}, "hybrid-dbsf": {"mode": "hybrid", "fusion": "dbsf"}}
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for i in range(queries + 20):  # the first 20 warm up; modes interleaved so load hits all alike
            vector = centres[i % 64] + 0.3 * rng.normal(size=DIM)
            for mode, options in modes.items():
                request = SearchRequest(vector.astype(np.float32), text=texts[i % len(texts)], limit=10, **options)
                start = time.perf_counter()
                store.search("lat", request)
                if i >= 20:
                    times[mode].append(time.perf_counter() - start)
        indexed = store.indexed_vectors("lat")
    stats = {mode: {"p50_ms": 1000 * float(np.percentile(t, 50)), "p95_ms": 1000 * float(np.percentile(t, 95))}
             for mode, t in times.items()}
    ratios = {mode: stats[mode]["p50_ms"] / stats["dense"]["p50_ms"] for mode in ("bm25", "hybrid-rrf", "hybrid-dbsf")}
    return {"products": products, "queries": queries, "upsert_s": upsert_s, "index_s": index_s,
            "indexed_vectors": indexed, "stats": stats, "p50_ratio_to_dense": ratios,
            "goal_met": max(ratios["hybrid-rrf"], ratios["hybrid-dbsf"]) <= 2.0}


def markdown(result: dict[str, Any]) -> str:
    q, c, lat = result["quality"], result["cross_check"], result["latency"]
    lines = ["# Keyword and hybrid search", "",
             f"Demo dataset and model ({result['settings']['demo']}); exact search, top_q 2000, k 1000, seed 1. "
             f"Machine: {result['machine']}.", "", "## NDCG@10 per split", "",
             "| arm | " + " | ".join(SPLIT_NAMES) + " |", "|---|" + "---:|" * len(SPLIT_NAMES)]
    for arm, splits in q["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(f"{splits[s]['ndcg@10']:.4f}" for s in SPLIT_NAMES) + " |")
    lines += ["", "Goal (hybrid ≥ the better of dense and bm25 on ≥ 3 of 4 splits): " + "; ".join(
        f"{arm}: {'met' if g['met'] else 'missed'} ({', '.join(g['splits_at_least_the_better']) or 'none'})"
        for arm, g in q["goal"].items()), "", "## Headline metrics", "",
        "| arm | split | " + " | ".join(next(iter(next(iter(q["arms"].values())).values()))) + " |",
        "|---|---|" + "---:|" * len(next(iter(next(iter(q["arms"].values())).values())))]
    for arm, splits in q["arms"].items():
        for split, metrics in splits.items():
            lines.append(f"| {arm} | {split} | " + " | ".join(f"{v:.4f}" for v in metrics.values()) + " |")
    lines += ["", f"## BM25 cross-check against rank_bm25 (top-10 identical up to ties; avg_len {c['avg_len']:g})", "",
              "| split | queries | same settings: identical top-10 | rank_bm25's corpus-mean length: same top-10 "
              "products (a lower bound: which of several products tied at the 10th place each keeps is arbitrary) |", "|---|---:|---:|---:|"]
    for split, row in c["splits"].items():
        lines.append(f"| {split} | {row['queries']:.0f} | {row['fixed_avg_len']:.1%} | "
                     f"{row['corpus_mean_same_products']:.1%} |")
    lines += ["", f"Goal (≥ 99 % with the same settings): {'met' if c['goal_met'] else 'missed'}.", "",
              f"## Query latency at {lat['products']:,} products ({lat['queries']} queries per mode, same run)", "",
              "| mode | p50 ms | p95 ms | p50 / dense |", "|---|---:|---:|---:|"]
    for mode, stats in lat["stats"].items():
        ratio = lat["p50_ratio_to_dense"].get(mode, 1.0)
        lines.append(f"| {mode} | {stats['p50_ms']:.2f} | {stats['p95_ms']:.2f} | {ratio:.2f}× |")
    lines += ["", f"Goal (hybrid p50 ≤ 2 × dense p50): {'met' if lat['goal_met'] else 'missed'}. "
              f"Upsert {lat['upsert_s']:.0f} s, HNSW index {lat['index_s']:.0f} s "
              f"({lat['indexed_vectors']:,} indexed vectors).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: proves the script works")
    parser.add_argument("--work", type=Path, default=None, help="cache folder for the demo (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-") as scratch:
        work = args.work or Path(scratch)
        store, data = demo_store(work, args.quick)
        result: dict[str, Any] = {
            "settings": {"demo": "300 products, 60 queries, 15 steps" if args.quick else "3000 products, 400 queries",
                         "quick": args.quick},
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        }
        result["quality"] = quality(store, data)
        result["cross_check"] = cross_check(store, data)
    result["latency"] = latency(5_000 if args.quick else 100_000, 100 if args.quick else 300)
    write_results(NAME, result, markdown(result), full_size=not args.quick)


if __name__ == "__main__":
    main()
