"""Replication: GCL (graded weights) against the CLIP loss (binary weights) on the synthetic benchmark.

For each model seed, both arms train gcl-tiny from the same random initialisation on the same batches of
the same dataset (fixed data seed); they differ only in the pair weights: `loss.kind=clip` (w = 1) or
`loss.kind=gcl` with a weight transform (default linear: w = score_linear / max). Each checkpoint is
exported to ONNX (`exporters.export_bundle`), ingested into an embedded store in a scratch folder
(`gcl_vectordb.ingest`) and evaluated on all four splits with the protocol
(`gcl_vectordb.evaluation.runner.evaluate`: exact search, top_q 2000, k 1000). Then per split: mean ± std
over seeds of NDCG@10, mERR, mRBP7/8/9, MAP, MRR, the paired GCL − CLIP differences, relative changes and
sign counts (`gcl_vs_clip_report.py`), NDCG@10 by query size, and model-free reference rankings
(`gcl_vs_clip_data.py`: the attribute oracle is the ceiling on unseen queries/products).

    python benchmarks/gcl_vs_clip.py [--quick] [--seeds 0 1 2] [--epochs N] [--weights linear power:gamma=3]

Full size: synthesize(products=3000, queries=400, seed=0, 64 px) — the demo's dataset — trainer defaults
(batch 64, 3 epochs, lr 5e-4, t₀ 50, field weights image 0.9 / title 0.1, same-query masking), all
in-domain queries trained (no held-out hook). --quick: 300 products, 40 queries, 15 steps of batch 16,
seeds 0 1 (proves the script works; figures meaningless). Finished (arm, seed) results are cached in
--work (keyed by every setting), so a re-run with more arms or seeds trains only what is new.
Writes benchmarks/results/gcl_vs_clip.{json,md,svg} (`.quick.` files with --quick).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import gcl_vs_clip_data as synthdata  # noqa: E402
from benchmarks._results import RESULTS, write_results  # noqa: E402
from benchmarks.gcl_vs_clip_lexical import LEXICAL_ARMS, lexical_table  # noqa: E402
from benchmarks.gcl_vs_clip_report import (  # noqa: E402
    METRICS,
    aggregate,
    control_comparisons,
    headline_table,
    markdown_table,
    ndcg_chart,
)

SPLIT_NAMES = ("in-domain", "novel-query", "novel-doc", "zero-shot")
SHUFFLED = "shuffled-"
SHUFFLED_COLUMN = "score_shuffled"
NAME = "gcl_vs_clip"


def parse_weights(spec: str) -> tuple[str, dict[str, float]]:
    """"power:gamma=3,floor=0" → ("power", {"gamma": 3.0, "floor": 0.0}); a "shuffled-" prefix is dropped."""
    name, _, params = spec.removeprefix(SHUFFLED).partition(":")
    values = {}
    for item in filter(None, params.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--weights {spec!r}: write parameters as name=value")
        values[key.strip()] = float(value)
    return name.strip(), values


def arm_name(spec: str) -> str:
    name, params = parse_weights(spec)
    prefix = "control-shuffled" if spec.startswith(SHUFFLED) else "gcl"
    return "-".join([prefix, name, *(f"{k}{v:g}" for k, v in params.items())])


def shuffled_dataset(root: Path, seed: int) -> Path:
    """A view of `root` whose in-domain table has one more column, SHUFFLED_COLUMN: score_linear permuted
    over the split's rows (seeded). Training on it gives every pair a weight from the same distribution as
    the graded arm's, but unrelated to its relevance: the control for "unequal weights" without grades.
    Every other file is a symbolic link to `root`'s."""
    import numpy as np
    import pandas as pd

    from gcl_vectordb.data import get_split

    out = root.with_name(f"{root.name}-shuffled")
    table = f"{get_split('in-domain').stem}.csv"
    if not (out / table).is_file():
        out.mkdir(exist_ok=True)
        for path in root.iterdir():
            if path.name != table and not (out / path.name).exists():
                (out / path.name).symlink_to(path.resolve())
        frame = pd.read_csv(root / table, dtype=str, keep_default_na=False)
        scores = frame["score_linear"].to_numpy()
        frame[SHUFFLED_COLUMN] = scores[np.random.default_rng([seed, 7]).permutation(len(scores))]
        frame.to_csv(out / table, index=False)
    return out


def make_dataset(work: Path, settings: dict[str, Any]) -> Path:
    """The synthetic dataset of `settings` under work/ (generated once; its manifest is the check)."""
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    root = work / f"data-{settings['products']}-{settings['queries']}-{settings['data_seed']}"
    if not (root / "gcl-synth.json").is_file():
        print(f"synthesizing {root} ...", flush=True)
        synthesize(SynthConfig(out=root, products=settings["products"], queries=settings["queries"],
                               seed=settings["data_seed"], overwrite=True))
    return root


def train_config(root: Path, out: Path, arm: str, spec: str | None, seed: int, settings: dict[str, Any]):
    from trainer.config import load_config

    updates = {"out": out, "data.root": root, "loss.kind": "clip" if arm == "clip" else "gcl", "seed": seed,
               "epochs": settings["epochs"], "eval.holdout_fraction": settings["holdout"]}
    overrides = list(settings["overrides"])
    if spec is not None:
        name, params = parse_weights(spec)
        overrides += [f"loss.weights={name}", *(f"loss.weight_params.{k}={v}" for k, v in params.items())]
        if spec.startswith(SHUFFLED):
            updates |= {"data.root": shuffled_dataset(root, settings["data_seed"]),
                        "data.weight_column": SHUFFLED_COLUMN}
    return load_config(None, updates=updates, overrides=overrides)


def run_arm(root: Path, arm: str, spec: str | None, seed: int, settings: dict[str, Any],
            sizes: dict[str, int]) -> dict[str, Any]:
    """Train → export → ingest → evaluate one arm with one seed, in a scratch folder; its figures."""
    from exporters import ExportConfig, export_bundle
    from gcl_vectordb.evaluation.runner import EvalConfig, evaluate
    from gcl_vectordb.ingest import IngestConfig, ingest_dataset
    from trainer.recipe import run_training

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"{arm}-s{seed}-") as scratch:
        tmp = Path(scratch)
        config = train_config(root, tmp / "run", arm, spec, seed, settings)
        clock = time.perf_counter()
        trained = run_training(config)
        seconds["train"], clock = time.perf_counter() - clock, time.perf_counter()
        export_bundle(ExportConfig(out=tmp / "model", checkpoint=tmp / "run"))
        seconds["export"], clock = time.perf_counter() - clock, time.perf_counter()
        store = str(tmp / "store")
        ingest_dataset(IngestConfig(collection="gs", data=root, model_ref=str(tmp / "model"), store=store))
        seconds["ingest"], clock = time.perf_counter() - clock, time.perf_counter()
        report = evaluate(EvalConfig(splits=SPLIT_NAMES, collection="gs", store=store, data=root))
        lexical = {mode: evaluate(EvalConfig(splits=SPLIT_NAMES, collection="gs", store=store, data=root, **options))
                   for mode, options in LEXICAL_ARMS.items()}
        seconds["evaluate"] = time.perf_counter() - clock
    splits = {
        s.split: {**s.headline(), "n_queries": s.n_queries,
                  "ndcg@10_by_query_size": synthdata.by_query_size(s.metrics, sizes)}
        for s in report.splits
    }
    train = {"steps": trained.steps, "epochs": trained.epochs_completed, "train_pairs": trained.data.train_pairs,
             "final_loss": trained.final_loss, "pairs_per_s": trained.pairs_per_second,
             "loss": config.loss.kind, "weights": config.loss.weight_transform().name,
             "weight_params": dict(config.loss.weight_params) if arm != "clip" else {}}
    return {"arm": arm, "seed": seed, "splits": splits, "train": train, "seconds": seconds,
            "lexical": {mode: {s.split: s.headline() for s in r.splits} for mode, r in lexical.items()}}


def cached_run(work: Path, root: Path, arm: str, spec: str | None, seed: int, settings: dict[str, Any],
               sizes: dict[str, int]) -> dict[str, Any]:
    """`run_arm`, or its stored result when the same arm, seed and settings ran before."""
    key = json.dumps({"arm": arm, "spec": spec, "seed": seed, **settings}, sort_keys=True)
    path = work / "results" / f"{arm}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        print(f"{arm} seed {seed}: cached ({path.name})", flush=True)
        return json.loads(path.read_text())
    print(f"{arm} seed {seed}: training ...", flush=True)
    result = run_arm(root, arm, spec, seed, settings, sizes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    line = ", ".join(f"{s} {v['ndcg@10']:.4f}" for s, v in result["splits"].items())
    print(f"{arm} seed {seed}: NDCG@10 {line} ({sum(result['seconds'].values()):.0f} s)", flush=True)
    return result


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def describe_data(root: Path, settings: dict[str, Any], specs: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """The data diagnostics and the model-free reference rankings; and the query sizes."""
    import numpy as np

    from gcl_vectordb.data import get_split
    from trainer.losses import make_weight_transform

    data = synthdata.synth_data(settings["products"], settings["queries"], settings["data_seed"])
    rows = data.split_rows(get_split("in-domain"))  # the rows of the in-domain table, in file order
    transforms, shuffled = {"clip": make_weight_transform("binary")}, {}
    for spec in specs:
        name, params = parse_weights(spec)
        transforms[arm_name(spec)] = make_weight_transform(name, **params)
        if spec.startswith(SHUFFLED):  # the permutation `shuffled_dataset` applies
            shuffled[arm_name(spec)] = np.random.default_rng([settings["data_seed"], 7]).permutation(len(rows))
    info = {"lists": synthdata.list_composition(data),
            "training_weights": synthdata.weight_shares(data, rows, transforms, shuffled),
            "reference_rankings": synthdata.oracle_scores(data, root, SPLIT_NAMES)}
    return info, synthdata.query_sizes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny size: proves the script runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="model seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's, 3)")
    parser.add_argument("--weights", nargs="+", default=["linear"],
                        help="GCL weight transforms, one arm each: linear, power:gamma=3, rank_exp:tau=5, ...; "
                             "shuffled-linear: the control, linear weights permuted over the pairs")
    parser.add_argument("--holdout", type=float, default=0.0, help="eval.holdout_fraction (default 0: train all)")
    parser.add_argument("--work", type=Path, default=Path("gcl-vdb-work") / NAME, help="cache folder")
    parser.add_argument("--name", default=NAME, help="results file name (benchmarks/results/NAME.*)")
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0, 1] if args.quick else [0, 1, 2])
    settings: dict[str, Any] = {
        "products": 300 if args.quick else 3000, "queries": 40 if args.quick else 400, "data_seed": 0,
        "image_size": 64, "model": "gcl-tiny", "epochs": args.epochs or (1 if args.quick else 3),
        "holdout": args.holdout,
        "overrides": ["batch_size=16", "optim.warmup_steps=2", "max_steps=15"] if args.quick else [],
    }
    args.work.mkdir(parents=True, exist_ok=True)
    root = make_dataset(args.work, settings)
    data_info, sizes = describe_data(root, settings, args.weights)
    arms = [("clip", None)] + [(arm_name(spec), spec) for spec in args.weights]
    runs = [cached_run(args.work, root, arm, spec, seed, settings, sizes) for seed in seeds for arm, spec in arms]
    write_all(args, settings, seeds, arms, runs, data_info)


T_CRITICAL_95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}
"""Two-sided 95 % critical values of Student's t by degrees of freedom (paired test over seeds)."""


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per GCL arm and split: NDCG@10's paired t statistic and whether it clears the 95 % threshold."""
    n = len(result["seeds"])
    out: dict[str, dict[str, Any]] = {}
    for arm, splits in result["comparison"].items():
        out[arm] = {}
        for split, metrics in splits.items():
            diff = metrics["ndcg@10"]["diff"]
            t = diff["mean"] / (diff["std"] / n**0.5) if n > 1 and diff["std"] > 0 else None
            threshold = T_CRITICAL_95.get(n - 1, 2.0)
            out[arm][split] = {"t": t, "t_critical_95": threshold if n > 1 else None,
                               "significant_95": t is not None and abs(t) > threshold}
    return out


def conclusion(result: dict[str, Any], tests: dict[str, dict[str, Any]], data_info: dict[str, Any],
               controls: dict[str, Any]) -> str:
    """Plain statements read off the figures: per GCL arm, how NDCG@10 moved and whether that is more
    than the seed-to-seed spread; graded arms against their shuffled controls; every arm against the
    attribute oracle."""
    lines = []
    n = len(result["seeds"])
    for arm, splits in result["comparison"].items():
        parts = []
        for split, metrics in splits.items():
            rel, test = metrics["ndcg@10"]["relative"], tests[arm][split]
            verdict = "significant" if test["significant_95"] else "not significant"
            t = f"t = {test['t']:+.2f}" if test["t"] is not None else "t n/a"
            parts.append(f"{split} {rel['mean'] * 100:+.1f} % ({metrics['ndcg@10']['wins']}/{n} seeds higher, "
                         f"{t}, {verdict} at 95 %)")
        lines.append(f"- **{arm} vs clip, NDCG@10**: " + "; ".join(parts) + ".")
    for graded, entry in controls.items():
        parts = [f"{split} {m['ndcg@10']['relative']['mean'] * 100:+.1f} % ({m['ndcg@10']['wins']}/{n} seeds higher)"
                 for split, m in entry["comparison"].items()]
        lines.append(f"- **{graded} vs {entry['control']}** (the same weights shuffled over the pairs: what the "
                     "grades add beyond unequal weights), NDCG@10: " + "; ".join(parts) + ".")
    oracle = data_info["reference_rankings"]
    for arm in result["arms"]:
        shares = [result["summary"][arm][s]["ndcg@10"]["mean"] / oracle[s]["attribute oracle"]["ndcg@10"]
                  for s in result["splits"]]
        lines.append(f"- **{arm}** reaches " + ", ".join(f"{s} {v:.0%}" for s, v in
                                                          zip(result["splits"], shares, strict=True))
                     + " of the attribute oracle's NDCG@10.")
    return "\n".join(lines) + "\n"


def _by_size_table(result: dict[str, Any], runs: list[dict[str, Any]], data_info: dict[str, Any]) -> str:
    sizes = sorted({size for run in runs for s in run["splits"].values() for size in s["ndcg@10_by_query_size"]})
    lines = ["| split | ranking | " + " | ".join(f"{k}-attribute queries" for k in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for split in result["splits"]:
        for arm in result["arms"]:
            values = [[r["splits"][split]["ndcg@10_by_query_size"].get(k) for r in runs if r["arm"] == arm]
                      for k in sizes]
            cells = [f"{sum(v) / len(v):.3f}" if None not in v else "–" for v in values]
            lines.append(f"| {split} | {arm} (mean over seeds) | " + " | ".join(cells) + " |")
        for name, ref in data_info["reference_rankings"][split].items():
            cells = [f"{ref['ndcg@10_by_query_size'].get(k, float('nan')):.3f}" for k in sizes]
            lines.append(f"| {split} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _data_tables(data_info: dict[str, Any]) -> str:
    lists = data_info["lists"]
    bands = lists["exact_share_by_position"]
    out = ["| list positions | " + " | ".join(bands) + " | all |", "|---|" + "---|" * (len(bands) + 1),
           "| share of exact matches | " + " | ".join(f"{v:.0%}" for v in bands.values())
           + f" | {lists['exact_share']:.0%} |", "",
           "| query size | queries | exact matches in the list | exact matches in the catalogue per query |",
           "|---|---|---|---|"]
    for size, row in lists["by_query_size"].items():
        out.append(f"| {size} attribute(s) | {row['queries']} | {row['exact_share_of_list']:.0%} | "
                   f"{row['exact_in_catalogue_per_query']:.1f} |")
    out += ["", "| training weights | mean w | exact-match share of pairs | of Σw | effective sample (Σw)²/(NΣw²) |",
            "|---|---|---|---|---|"]
    for name, row in data_info["training_weights"].items():
        out.append(f"| {name} | {row['mean_weight']:.3f} | {row['exact_pair_share']:.1%} | "
                   f"{row['exact_weight_share']:.1%} | {row['effective_sample_fraction']:.2f} |")
    return "\n".join(out) + "\n"


def markdown(result: dict[str, Any], runs: list[dict[str, Any]], settings: dict[str, Any],
             data_info: dict[str, Any], tests: dict[str, Any], controls: dict[str, Any], chart: str) -> str:
    s = settings
    train = runs[0]["train"]
    return (
        f"# GCL vs CLIP on the synthetic benchmark (gcl-tiny, {len(result['seeds'])} seeds)\n\n"
        f"Dataset: `synthesize(products={s['products']}, queries={s['queries']}, seed={s['data_seed']}, "
        f"{s['image_size']} px)`; model {s['model']} from random init (model seeds {result['seeds']}, the same "
        f"initialisation and batches for every arm of a seed); {s['epochs']} epochs = {train['steps']} steps of "
        f"batch {s['trainer']['batch_size']} over {train['train_pairs']} in-domain pairs, lr {s['trainer']['lr']}, "
        f"t₀ {s['trainer']['logit_scale_init']}, field weights {s['trainer']['field_weights']}, same-query "
        f"masking {s['trainer']['mask_same_query']}, held-out fraction {s['holdout']}. Evaluation: the protocol "
        f"through the embedded Qdrant store, exact search, top_q 2000 (all queries of a split), k 1000, "
        f"fused vectors. Arms: {', '.join(result['arms'])}. Machine: {s['machine']['processor']}, "
        f"{s['machine']['cpus']} CPUs ({s['machine']['device']}). Produced by `{s['command']}`.\n\n"
        "## Conclusion (from the figures below)\n\n" + conclusion(result, tests, data_info, controls)
        + "\n## Headline (mean ± sample std over seeds; relative change = mean of per-seed (gcl − clip) / clip, "
        "in brackets the seeds where GCL is higher)\n\n" + headline_table(result)
        + "\n## NDCG@10 by query size, with model-free reference rankings\n\n"
        "attribute oracle: products by matched attributes, exact first (the best possible without memorising "
        "the lists' noise); list oracle: the listed products first in random order.\n\n"
        + _by_size_table(result, runs, data_info)
        + "\n## What the grades encode (in-domain training pairs; whole lists for the position bands)\n\n"
        + _data_tables(data_info)
        + "\n## All metrics, paired against clip\n\n" + markdown_table(result) + lexical_table(runs)
        + f"\n![NDCG@10 per split]({chart})\n"
    )


def write_all(args: argparse.Namespace, settings: dict[str, Any], seeds: list[int],
              arms: list[tuple[str, str | None]], runs: list[dict[str, Any]], data_info: dict[str, Any]) -> None:
    from trainer.config import TrainConfig
    from trainer.records import versions

    defaults = TrainConfig().to_dict()
    trainer_settings = {"batch_size": 16 if args.quick else defaults["batch_size"], "lr": defaults["optim"]["lr"],
                        "warmup_steps": 2 if args.quick else defaults["optim"]["warmup_steps"],
                        "schedule": defaults["optim"]["schedule"], "logit_scale_init": defaults["loss"]["logit_scale_init"],
                        "field_weights": defaults["loss"]["field_weights"],
                        "mask_same_query": defaults["loss"]["mask_same_query"], "precision": "auto"}
    command = "python benchmarks/gcl_vs_clip.py " + " ".join(sys.argv[1:])
    settings = {**settings, "command": command.strip(), "seeds": seeds, "arms": {arm: spec or "binary" for arm, spec in arms},
                "trainer": trainer_settings, "evaluation": {"search": "exact", "top_q": 2000, "k": 1000,
                                                            "vector": "fused"},
                "versions": versions(), "machine": machine()}
    result = aggregate(runs, metrics=METRICS)
    tests, controls = verdicts(result), control_comparisons(runs)
    document = {"settings": settings, "aggregate": result, "tests": tests, "graded_vs_shuffled": controls,
                "data": data_info, "runs": runs}
    stem = args.name if not args.quick else f"{args.name}.quick"
    text = markdown(result, runs, settings, data_info, tests, controls, f"{stem}.svg")
    write_results(args.name, document, text, full_size=not args.quick)
    (RESULTS / f"{stem}.svg").write_text(ndcg_chart(
        result, f"NDCG@10 per split: {' vs '.join(result['arms'])} (gcl-tiny, synthetic, {len(seeds)} seeds)"))
    print(headline_table(result))


if __name__ == "__main__":
    main()
