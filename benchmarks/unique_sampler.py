"""Benchmark: planning an epoch with UniqueBatchSampler vs. plain shuffled batches (the baseline).

Data shaped like a Marqo-GS split: queries with 1..99 results each, products shared between queries.
Reports the planning time of one epoch and its ratio to the baseline (shuffle + chunk, which ignores
uniqueness), the batches planned against the upper bound Σ_q min(c_q, B) ≥ B · batch, and the share of
the baseline's batches that hold a repeated query or product (what the sampler prevents).

    python benchmarks/unique_sampler.py [--quick]
Writes benchmarks/results/unique_sampler.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.sampler import UniqueBatchSampler  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def marqo_like(num_queries: int, num_products: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    queries = np.repeat(np.arange(num_queries), rng.integers(1, 100, num_queries))
    return queries, rng.integers(0, num_products, len(queries))


def batch_bound(queries: np.ndarray, global_batch: int) -> int:
    """The most full batches possible when each query appears at most once per batch."""
    counts = np.bincount(queries)
    counts = counts[counts > 0]
    low, high = 0, len(queries) // global_batch
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(counts, mid).sum() >= mid * global_batch else (low, mid - 1)
    return low


def run(num_queries: int, num_products: int, batch_size: int, world_size: int) -> dict[str, float]:
    queries, products = marqo_like(num_queries, num_products)
    global_batch = batch_size * world_size
    start = time.perf_counter()
    baseline = np.random.default_rng(0).permutation(len(queries))
    baseline = baseline[: len(baseline) // global_batch * global_batch].reshape(-1, global_batch)
    baseline_s = time.perf_counter() - start
    sampler = UniqueBatchSampler(queries, products, batch_size, seed=0, world_size=world_size)
    start = time.perf_counter()
    plan = sampler.plan(0)
    sampler_s = time.perf_counter() - start
    dirty = sum(len(set(queries[b])) < global_batch or len(set(products[b])) < global_batch for b in baseline)
    return {
        "rows": len(queries),
        "global_batch": global_batch,
        "baseline_s": baseline_s,
        "sampler_s": sampler_s,
        "time_ratio": sampler_s / max(baseline_s, 1e-9),
        "batches": len(plan.batches),
        "batch_bound": batch_bound(queries, global_batch),
        "deferred_rows": len(plan.deferred),
        "baseline_batches_with_repeats": dirty / max(len(baseline), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny size that proves the script works")
    args = parser.parse_args()
    size = (200, 2_000, 16, 2) if args.quick else (20_000, 500_000, 256, 2)  # full: ~1M rows
    result = run(*size)
    for key, value in result.items():
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "unique_sampler.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(
        f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in result.items()
    )
    (RESULTS / "unique_sampler.md").write_text(
        f"# UniqueBatchSampler, one epoch plan\n\n| metric | value |\n|---|---|\n{rows}\n"
    )


if __name__ == "__main__":
    main()
