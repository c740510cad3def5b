"""Benchmark: GCL fine-tuning of gcl-tiny on the synthetic benchmark, on the CPU — speed and what it learns.

Measured in one run:
1. Step throughput (pairs/s) of the recipe's `train_step` against the baseline step that runs open_clip's
   plain `encode_text` on the full 77-token context (same model, same batches), and their ratio.
2. A training run with the default settings (`TrainConfig()`): seconds per epoch, pairs/s, and NDCG@10 /
   ERR of the held-out queries before training (the random-init model: the baseline) and after.
   `--clip` also trains the CLIP baseline (binary weights, `--loss clip`) on the same data.

    python benchmarks/train_tiny.py [--quick] [--clip]
Full size: `synthesize(products=3000, queries=400, 64 px)` (the demo's dataset), default settings.
--quick: 300 products, 40 queries, 1 epoch of batch 16 (proves the script works; figures meaningless).
Writes benchmarks/results/train_tiny.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import write_results  # noqa: E402
from gcl_vectordb.data.synth import SynthConfig, synthesize  # noqa: E402
from trainer.checkpointing import RunFolder  # noqa: E402
from trainer.config import TrainConfig, load_config  # noqa: E402
from trainer.recipe import GCLRecipe, run_training  # noqa: E402


def step_throughput(config: TrainConfig, steps: int) -> dict[str, float]:
    """pairs/s of train_step with the trimmed text tower and with the full-context baseline."""
    recipe = GCLRecipe(config)
    recipe.setup()
    try:
        batches = list(recipe._epoch_batches(0, 0))[: steps + 1]
        pairs = sum(len(b) for group in batches[1:] for b in group)
        out = {}
        for name, trim in (("baseline_full_context", False), ("trimmed", True), ("baseline_again", False)):
            recipe.towers.trim_text = trim
            recipe.train_step(batches[0])  # warm-up
            start = time.perf_counter()
            for group in batches[1:]:
                recipe.train_step(group)
            out[name] = pairs / (time.perf_counter() - start)
    finally:
        recipe.cleanup()
    baseline = (out.pop("baseline_full_context") + out.pop("baseline_again")) / 2
    return {"baseline_pairs_per_s": baseline, "pairs_per_s": out["trimmed"], "ratio": out["trimmed"] / baseline}


def train_run(config: TrainConfig) -> dict[str, object]:
    start = time.perf_counter()
    result = run_training(config)
    seconds = time.perf_counter() - start
    train_seconds = RunFolder(result.run_dir).read_record()["train_seconds"]  # steps only, no evaluation
    return {
        "loss": config.loss.kind, "steps": result.steps, "epochs": result.epochs_completed, "seconds": seconds,
        "seconds_per_epoch": train_seconds / max(result.epochs_completed, 1), "pairs_per_s": result.pairs_per_second,
        "final_loss": result.final_loss,
        "ndcg@10_before": (result.eval_before or {}).get("ndcg@10"), "ndcg@10_after": (result.eval_after or {}).get("ndcg@10"),
        "err_before": (result.eval_before or {}).get("err"), "err_after": (result.eval_after or {}).get("err"),
        "eval_queries": result.data.eval_queries, "train_pairs": result.data.train_pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny size: proves the script runs")
    parser.add_argument("--clip", action="store_true", help="also train the CLIP baseline (binary weights)")
    args = parser.parse_args()
    products, queries = (300, 40) if args.quick else (3000, 400)
    quick = ["epochs=1", "batch_size=16", "optim.warmup_steps=2"] if args.quick else []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "gs"
        synthesize(SynthConfig(out=root, products=products, queries=queries))

        def config(name: str, *extra: str) -> TrainConfig:
            return load_config(updates={"out": Path(scratch) / name, "data.root": root}, overrides=[*quick, *extra])
        speed = step_throughput(config("speed", "eval.before_training=false"), steps=3 if args.quick else 10)
        runs = [train_run(config("gcl"))]
        if args.clip:
            runs.append(train_run(config("clip", "loss.kind=clip")))
    result = {"dataset": {"products": products, "queries": queries, "image_size": 64}, "step": speed, "runs": runs}
    rows = "\n".join(
        f"| {r['loss']} | {r['epochs']} | {r['steps']} | {r['seconds_per_epoch']:.0f} | {r['pairs_per_s']:.1f} | "
        f"{r['ndcg@10_before']:.4f} → {r['ndcg@10_after']:.4f} | {r['err_before']:.4f} → {r['err_after']:.4f} |"
        for r in runs
    )
    markdown = (
        f"# gcl-tiny training on the synthetic benchmark ({products} products, {queries} queries), CPU\n\n"
        f"Step throughput: {speed['pairs_per_s']:.1f} pairs/s with the trimmed text tower vs "
        f"{speed['baseline_pairs_per_s']:.1f} pairs/s on the full context: **{speed['ratio']:.2f}×**.\n\n"
        "| loss | epochs | steps | s/epoch | pairs/s | NDCG@10 before → after | ERR before → after |\n"
        "|---|---|---|---|---|---|---|\n" + rows + "\n"
    )
    write_results("train_tiny", result, markdown, full_size=not args.quick)


if __name__ == "__main__":
    main()
