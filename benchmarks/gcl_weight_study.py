"""Study: what makes graded weights pay off on unseen queries — measured on validation queries only.

From the pretrained start (`gcl_pretrain.py`), each arm (`gcl_finetune.parse_arm`: the CLIP loss; GCL with
the linear, reciprocal or power transform; a weight floor; the loss divided by the batch size instead of
Σw) is fine-tuned with each learning rate and seed for up to --epochs epochs. A seeded --holdout fraction
of the in-domain training queries is held out of training (the trainer's `eval.holdout_fraction`; the
held-out queries never reach a batch) and after every epoch the held-out queries are ranked over the
in-domain corpus (exact search, the protocol's judgments): that *validation* curve is all this study
reads. Per arm, the (learning rate, epoch) with the highest mean validation NDCG@10 over seeds is its
peak; arms are compared at their peaks, seed by seed, against the CLIP loss at its peak. No test split
is evaluated here: the best GCL arm and the CLIP loss, each at its peak, go to `gcl_vs_clip_pretrained.py
--name gcl_weight_study_confirmation` for ≥ 5 seeds on the test splits (the report prints the command).

    python benchmarks/gcl_weight_study.py [--quick] [--jobs 2] [--seeds 0 1 2] [--arms clip linear ...] [--lrs ...]

Full size: the replication's dataset (3,000 products, 400 queries, seed 0), holdout 0.2 (64 validation
queries per seed, a different draw per seed), 4 epochs, learning rates 1.5e-4 (the main comparison's) and
4.5e-4 (constant after 20 warm-up steps), batch 64: 6 arms × 2 rates × 3 seeds = 36 runs of ≈ 9 min on one
core each (≈ 3 h wall with --jobs 2). Runs are cached in --work (one JSON per run), so the study grows by
re-running with more arms, rates or seeds; `--no-report` trains without writing the results files (for a
second process sharing the work). Writes benchmarks/results/NAME.{json,md,svg} (`--name`, default
gcl_weight_study). Longer training, e.g. the CLIP loss and the floor arm to 8 epochs (the schedule is constant
after warm-up, so its first 4 epochs are the 4-epoch runs'): `--arms clip linear:floor=0.5 --lrs 1.5e-4
--epochs 8 --jobs 2 --name gcl_weight_study_epochs8` (6 runs, ≈ 1 h wall).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import gcl_pretrain  # noqa: E402
from benchmarks import gcl_vs_clip_data as synthdata  # noqa: E402
from benchmarks._results import RESULTS, write_results  # noqa: E402
from benchmarks.gcl_finetune import Arm, cached_run, parse_arm, run_once, train_in_processes  # noqa: E402
from benchmarks.gcl_vs_clip import machine, make_dataset  # noqa: E402
from benchmarks.gcl_vs_clip_report import METRIC_LABELS, paired, summarize, svg_bar_chart  # noqa: E402

NAME = "gcl_weight_study"
CONFIRMATION = f"{NAME}_confirmation"
DEFAULT_ARMS = ("clip", "linear", "reciprocal", "power:gamma=2", "linear:floor=0.5", "linear:norm=batch")
METRICS = ("ndcg@10", "err", "rbp@0.8")


def study_runs(args: argparse.Namespace, settings: dict[str, Any], root: Path, init: Path,
               arms: list[Arm]) -> list[dict[str, Any]]:
    """Every (arm, lr, seed) run, trained now unless cached; in the order arm, lr, seed."""
    runs = []
    for arm in arms:
        for lr in args.lrs:
            for seed in args.seeds:
                key = {"study": NAME, "arm": arm.name, "spec": arm.spec, "seed": seed, "lr": lr,
                       "epochs": settings["epochs"], "holdout": settings["holdout"], "data": settings["data"],
                       "pretrain": settings["pretrain_key"], "extra": settings["extra"]}
                runs.append(cached_run(args.work, key, lambda arm=arm, lr=lr, seed=seed: run_once(
                    root, init, arm, seed, lr=lr, epochs=settings["epochs"], holdout=settings["holdout"],
                    test=False, sizes={}, extra=tuple(settings["extra"]))))
    return runs


def curves(runs: list[dict[str, Any]], metric: str = "ndcg@10") -> dict[str, dict[float, list[dict[str, float]]]]:
    """{arm: {lr: [summary over seeds of `metric` at epoch 0, 1, …]}}."""
    grouped: dict[str, dict[float, list[list[float]]]] = {}
    for run in runs:
        series = [point[metric] for point in run["validation"]]
        grouped.setdefault(run["arm"], {}).setdefault(run["lr"], []).append(series)
    return {arm: {lr: [summarize([s[e] for s in seeds]) for e in range(min(map(len, seeds)))]
                  for lr, seeds in by_lr.items()} for arm, by_lr in grouped.items()}


def peaks(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm, the (lr, epoch ≥ 1) of the highest mean validation NDCG@10 over seeds, and the per-seed
    figures there (seed order) for NDCG@10, mERR and mRBP8."""
    out = {}
    for arm, by_lr in curves(runs).items():
        lr, epoch = max(((lr, e) for lr, points in by_lr.items() for e in range(1, len(points))),
                        key=lambda p: by_lr[p[0]][p[1]]["mean"])
        chosen = sorted((r for r in runs if r["arm"] == arm and r["lr"] == lr), key=lambda r: r["seed"])
        out[arm] = {"spec": chosen[0]["spec"], "lr": lr, "epoch": epoch, "seeds": [r["seed"] for r in chosen],
                    "per_seed": {m: [r["validation"][epoch][m] for r in chosen] for m in METRICS},
                    "start": {m: [r["validation"][0][m] for r in chosen] for m in METRICS}}
    return out


def compare_peaks(best: dict[str, dict[str, Any]], baseline: str = "clip") -> dict[str, Any]:
    """Each arm at its peak against the baseline at its peak, seed by seed (`paired`), per metric."""
    base = best[baseline]
    return {arm: {m: {"summary": summarize(entry["per_seed"][m]),
                      **({} if arm == baseline else {"vs_clip": paired(base["per_seed"][m], entry["per_seed"][m])})}
                  for m in METRICS}
            for arm, entry in best.items()}


def confirmation(best: dict[str, dict[str, Any]], baseline: str = "clip", quick: bool = False) -> dict[str, Any]:
    """The GCL arm with the highest mean validation NDCG@10 at its peak, and the main comparison's arms that
    confirm it on the test splits: the CLIP loss and that arm, each at its own peak (lr, epoch)."""
    def at_peak(entry: dict[str, Any]) -> str:
        joiner = "," if ":" in entry["spec"] else ":"
        return f"{entry['spec']}{joiner}lr={entry['lr']:g},epochs={entry['epoch']}"
    mean = {arm: summarize(entry["per_seed"]["ndcg@10"])["mean"] for arm, entry in best.items() if arm != baseline}
    arm = max(mean, key=mean.__getitem__)
    arms = [at_peak(best[baseline]), at_peak(best[arm])]
    command = (f"python benchmarks/gcl_vs_clip_pretrained.py --jobs 2 {'--quick ' if quick else ''}"
               f"--name {CONFIRMATION} --arms {' '.join(arms)}")
    return {"arm": arm, "arms": arms, "command": command}


def effective_samples(settings: dict[str, Any], arms: list[Arm]) -> dict[str, dict[str, float]]:
    """Per arm, the training weights' mean, exact-match share of Σw and effective sample size (Σw)²/(NΣw²)."""
    from gcl_vectordb.data import get_split
    from trainer.config import load_config

    data = synthdata.synth_data(*settings["data"])
    rows = data.split_rows(get_split("in-domain"))
    transforms = {arm.name: load_config(None, overrides=list(arm.overrides)).loss.weight_transform() for arm in arms}
    return synthdata.weight_shares(data, rows, transforms)


def markdown(result: dict[str, Any]) -> str:
    s, seeds = result["settings"], result["settings"]["seeds"]
    train_wall = sum(r["seconds"]["train"] for r in result["runs"])
    train_cpu = sum(r["seconds"]["train_cpu"] for r in result["runs"])
    last_invocation = f", {s['wall_hours']:.1f} h for the runs trained in the last invocation" if s["wall_hours"] >= 0.05 else ""
    at_end = [arm for arm, entry in result["peaks"].items() if entry["epoch"] == s["epochs"]]
    lines = [f"# What makes graded weights pay off out of domain: validation study ({len(seeds)} seeds)\n",
             f"From the pretrained gcl-tiny (`benchmarks/gcl_pretrain.py`), fine-tuned on the replication's dataset "
             f"(`synthesize(products={s['data'][0]}, queries={s['data'][1]}, seed={s['data'][2]})`) with a "
             f"{s['holdout']:.0%} hold-out of the in-domain training queries (validation; never trained on). "
             f"Constant learning rate after warm-up, batch {s['batch_size']}, up to {s['epochs']} epochs, seeds {seeds} "
             f"(the same batches for every arm of a seed). Validation: the held-out queries ranked over the "
             f"in-domain corpus by exact search, the protocol's relevance. No test split was evaluated. "
             f"Machine: {s['machine']['cpus']} CPUs. The {len(result['runs'])} runs: {train_wall / 60:.0f} min of "
             f"training wall time summed ({train_cpu / 60:.0f} min CPU; two single-thread runs at a time on 2 cores "
             f"halve the wall time){last_invocation}. Produced by `{s['command']}`.\n",
             "## Arms at their peak (learning rate and epoch of the highest mean validation NDCG@10)\n",
             "mean ± sample std over seeds; paired change against the CLIP loss at its own peak (mean of per-seed "
             "relative changes), in brackets the seeds where the arm is higher."
             + (f" {len(at_end)} of {len(result['peaks'])} arms peak at the last epoch run ({s['epochs']}): their "
                "curves may still rise beyond it." if at_end else "") + "\n",
             "| arm | lr | epoch | effective sample | val. NDCG@10 | Δ NDCG@10 vs clip | val. mERR | Δ mERR | "
             "val. mRBP8 | Δ mRBP8 |", "|---|---|---|---|---|---|---|---|---|---|"]
    n = len(seeds)
    for arm, entry in result["peaks"].items():
        comp = result["comparison"][arm]
        cells = [arm, f"{entry['lr']:g}", str(entry["epoch"]),
                 f"{result['weights'][arm]['effective_sample_fraction']:.2f}"]
        for m in METRICS:
            stats = comp[m]["summary"]
            cells.append(f"{stats['mean']:.3f} ± {stats['std']:.3f}")
            vs = comp[m].get("vs_clip")
            rel = vs["relative"] if vs else None
            cells.append(f"{rel['mean'] * 100:+.1f} ± {rel['std'] * 100:.1f} % ({vs['wins']}/{n})" if rel else "")
        lines.append("| " + " | ".join(cells) + " |")
    epochs = max(len(points) for by_lr in result["curves"].values() for points in by_lr.values())
    lines += ["", "## Validation NDCG@10 by epoch (epoch 0: the pretrained start)\n",
              "| arm | lr | " + " | ".join(f"epoch {e}" for e in range(epochs)) + " |",
              "|---|---|" + "---|" * epochs]
    for arm, by_lr in result["curves"].items():
        for lr, points in sorted(by_lr.items(), key=lambda item: float(item[0])):
            cells = [f"{p['mean']:.3f} ± {p['std']:.3f}" for p in points]
            lines.append(f"| {arm} | {float(lr):g} | " + " | ".join(cells) + " |")
    confirm = result["confirmation"]
    lines += ["", "## Confirmation on the test splits\n",
              f"The best GCL arm on validation, {confirm['arm']}, against the CLIP loss, each at its own peak, "
              "≥ 5 seeds, all four test splits through the store (the main comparison's protocol, trained on all "
              f"training queries): `{confirm['command']}` (`benchmarks/results/{CONFIRMATION}.md`).\n",
              f"![validation NDCG@10 at each arm's peak]({result['chart']})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny size: proves the script runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="model seeds (default 0 1 2)")
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), help="arm specs (see gcl_finetune.py)")
    parser.add_argument("--lrs", type=float, nargs="+", default=None, help="learning rates (default 1.5e-4 4.5e-4)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 4)")
    parser.add_argument("--holdout", type=float, default=0.2, help="validation share of the training queries")
    parser.add_argument("--work", type=Path, default=Path("gcl-vdb-work") / "gcl_vs_clip_pretrained")
    parser.add_argument("--jobs", type=int, default=1, help="train in this many single-thread processes (arms dealt "
                        "round-robin)")
    parser.add_argument("--name", default=NAME, help="results file name (another epoch count or arm set: another name, "
                        "so the main study's files stay)")
    parser.add_argument("--no-report", action="store_true", help="train (into the cache) without writing results")
    args = parser.parse_args()
    args.seeds = args.seeds if args.seeds is not None else ([0, 1] if args.quick else [0, 1, 2])
    args.lrs = args.lrs or ([5e-4] if args.quick else [1.5e-4, 4.5e-4])
    arms = [parse_arm(spec) for spec in args.arms]
    if arms[0].name != "clip" and not args.no_report:
        raise SystemExit("the first arm must be clip (the baseline)")
    data = (300, 40, 0) if args.quick else (3000, 400, 0)
    root = make_dataset(args.work, {"products": data[0], "queries": data[1], "data_seed": data[2]})
    pretrain_settings = gcl_pretrain.QUICK if args.quick else gcl_pretrain.FULL
    init, _ = gcl_pretrain.pretrained_checkpoint(args.work, pretrain_settings, root)
    settings: dict[str, Any] = {
        "data": data, "holdout": args.holdout, "epochs": args.epochs or (1 if args.quick else 4),
        "pretrain_key": gcl_pretrain.settings_key(pretrain_settings), "seeds": args.seeds, "lrs": args.lrs,
        "extra": ["batch_size=16", "optim.warmup_steps=2"] if args.quick else [],
        "batch_size": 16 if args.quick else 64,
    }
    clock = time.perf_counter()
    if args.jobs > 1:
        command = [__file__, "--work", str(args.work), "--holdout", str(args.holdout), "--epochs", str(settings["epochs"]),
                   "--lrs", *map(str, args.lrs), "--seeds", *map(str, args.seeds), *(["--quick"] if args.quick else [])]
        train_in_processes(command, "--arms", args.arms, args.jobs)
    runs = study_runs(args, settings, root, init, arms)
    if args.no_report:
        return
    best = peaks(runs)
    chart = f"{args.name}.quick.svg" if args.quick else f"{args.name}.svg"
    settings |= {"command": "python benchmarks/gcl_weight_study.py " + " ".join(sys.argv[1:]), "machine": machine(),
                 "wall_hours": (time.perf_counter() - clock) / 3600, "arms": {a.name: a.spec for a in arms}}
    result = {"settings": settings, "peaks": best, "comparison": compare_peaks(best),
              "confirmation": confirmation(best, quick=args.quick),
              "curves": {arm: {str(lr): points for lr, points in by_lr.items()} for arm, by_lr in curves(runs).items()},
              "weights": effective_samples(settings, arms), "chart": chart, "runs": runs}
    write_results(args.name, result, markdown(result), full_size=not args.quick, echo=False)
    series = [(arm, [result["comparison"][arm]["ndcg@10"]["summary"]["mean"]],
               [result["comparison"][arm]["ndcg@10"]["summary"]["std"]]) for arm in best]
    (RESULTS / chart).write_text(svg_bar_chart(
        [f"validation NDCG@10 ({METRIC_LABELS['ndcg@10']} at each arm's peak)"], series,
        title=f"Validation NDCG@10 at each arm's peak ({len(args.seeds)} seeds, pretrained gcl-tiny)",
        y_label="NDCG@10 (mean ± std over seeds)", width=900))
    print(markdown(result))


if __name__ == "__main__":
    main()
