"""Fine-tuning from the pretrained start (`gcl_pretrain.py`): arms, their training settings, cached runs.

Shared by the main comparison (`gcl_vs_clip_pretrained.py`: test splits through the store) and the study
(`gcl_weight_study.py`: the held-out validation queries only).

An arm spec names the loss and its options — `clip`, or a weight transform with `key=value` options:

    clip                       the CLIP loss (every pair weighs 1)
    linear                     GCL, w = score_linear / max
    power:gamma=2              GCL, w = (score_linear / max)²   (other keys: the transform's parameters)
    linear:floor=0.5           w = 0.5 + 0.5 · score_linear / max     (loss.weight_floor)
    linear:norm=batch          the weighted loss divided by the batch size, not by Σw (loss.normalize)
    clip:lr=1e-4,epochs=3      any arm: its own learning rate and epochs (the main comparison's)

Every run starts from the pretrained checkpoint, with the seed's batches (the same for every arm of a
seed), a constant learning rate after 20 warm-up steps (so the model after epoch e of a longer run is
the model of an e-epoch run: one run gives a whole validation curve) and the trainer's other defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gcl_vs_clip import evaluate_checkpoint
from gcl_vectordb.files import write_json_atomic

LOSS_KEYS = {"floor": "loss.weight_floor", "norm": "loss.normalize"}
RUN_KEYS = ("lr", "epochs")


@dataclass(frozen=True)
class Arm:
    """A parsed arm spec: `name` (its label, without lr/epochs), the loss overrides, and lr/epochs if given."""

    spec: str
    name: str
    overrides: tuple[str, ...]
    lr: float | None = None
    epochs: int | None = None


def parse_arm(spec: str) -> Arm:
    """"linear:floor=0.5,norm=batch,lr=3e-4" → Arm(name="gcl-linear-floor0.5-batch", overrides=(...), lr=3e-4)."""
    head, _, params = spec.partition(":")
    values: dict[str, str] = {}
    for item in filter(None, params.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise SystemExit(f"arm {spec!r}: write options as key=value")
        values[key.strip()] = value.strip()
    run = {key: values.pop(key) for key in RUN_KEYS if key in values}
    lr = float(run["lr"]) if "lr" in run else None
    epochs = int(run["epochs"]) if "epochs" in run else None
    if head == "clip":
        if values:
            raise SystemExit(f"arm {spec!r}: the clip arm takes only lr and epochs")
        return Arm(spec, "clip", ("loss.kind=clip",), lr, epochs)
    overrides = ["loss.kind=gcl", f"loss.weights={head}"]
    label = [f"gcl-{head}"]
    for key, value in values.items():
        if key == "norm":
            overrides.append(f"loss.normalize={value}")
            label.append(value)
        elif key in LOSS_KEYS:
            overrides.append(f"{LOSS_KEYS[key]}={float(value)}")
            label.append(f"{key}{float(value):g}")
        else:
            overrides.append(f"loss.weight_params.{key}={float(value)}")
            label.append(f"{key}{float(value):g}")
    return Arm(spec, "-".join(label), tuple(overrides), lr, epochs)


def finetune_config(root: Path, out: Path, init: Path, arm: Arm, seed: int, *, lr: float, epochs: int,
                    holdout: float, extra: tuple[str, ...] = ()):
    """The TrainConfig of one fine-tuning run from `init` (the pretrained run folder)."""
    from trainer.config import load_config

    updates = {"out": out, "data.root": root, "model.name": str(init), "seed": seed, "epochs": epochs,
               "optim.lr": lr, "eval.holdout_fraction": holdout}
    return load_config(None, updates=updates, overrides=[*arm.overrides, "optim.schedule=constant", *extra])


def validation_curve(run_dir: Path) -> list[dict[str, Any]]:
    """The held-out validation metrics from a run's record: epoch 0 (before training), then each epoch end."""
    record = json.loads((run_dir / "run.json").read_text())
    curve = [{"epoch": 0, "step": 0, **(record.get("eval_before") or {})}]
    curve += [{"epoch": entry["epoch"] + 1, "step": entry["step"], **entry["eval"]}
              for entry in record.get("epochs", []) if entry.get("eval")]
    return curve


def run_once(root: Path, init: Path, arm: Arm, seed: int, *, lr: float, epochs: int, holdout: float,
             test: bool, sizes: dict[str, int], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train one arm with one seed from `init`; its validation curve (holdout > 0) and, with `test`, the
    four test splits through the store."""
    from trainer.recipe import run_training

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"{arm.name}-s{seed}-") as scratch:
        run_dir = Path(scratch) / "run"
        config = finetune_config(root, run_dir, init, arm, seed, lr=lr, epochs=epochs, holdout=holdout, extra=extra)
        clock, cpu = time.perf_counter(), time.process_time()
        trained = run_training(config)
        seconds["train"] = time.perf_counter() - clock
        seconds["train_cpu"] = time.process_time() - cpu
        curve = validation_curve(run_dir) if holdout > 0 else []
        splits = evaluate_checkpoint(run_dir, root, sizes, seconds)[0] if test else {}
    train = {"steps": trained.steps, "epochs": trained.epochs_completed, "train_pairs": trained.data.train_pairs,
             "heldout_queries": trained.data.heldout_queries, "eval_queries": trained.data.eval_queries,
             "final_loss": trained.final_loss, "pairs_per_s": trained.pairs_per_second, "lr": lr,
             "weights": config.loss.weight_transform().name, "weight_floor": config.loss.weight_floor,
             "normalize": config.loss.normalize, "weight_params": dict(config.loss.weight_params)}
    return {"arm": arm.name, "spec": arm.spec, "seed": seed, "lr": lr, "epochs": epochs, "splits": splits,
            "validation": curve, "train": train, "seconds": seconds}


def cached_run(work: Path, key: dict[str, Any], compute) -> dict[str, Any]:
    """`compute()`, or its stored result when a run with the same `key` finished before (one JSON per run,
    written when the run ends, so an interruption loses at most the run in progress). The key holds the
    arm spec's text, so two spellings of one arm ("clip" at the default lr, "clip:lr=0.00015") are two
    runs; keying on the parsed arm instead would orphan every cached run, so the spelling stays part of it."""
    text = json.dumps(key, sort_keys=True, default=str)
    path = work / "runs" / f"{key['arm']}-s{key['seed']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        return json.loads(path.read_text())
    print(f"{key['arm']} seed {key['seed']} lr {key.get('lr')} epochs {key.get('epochs')}: training ...", flush=True)
    result = compute()
    write_json_atomic(path, result)
    return result


def train_in_processes(command: list[str], option: str, values: list[str], jobs: int) -> None:
    """Run `python *command --no-report option …` in `jobs` single-thread child processes, `values` dealt
    round-robin, and wait for all: they train into the shared run cache, from which the parent then reads
    every run. On 2 cores two single-thread trainings of this small model use the cores better than one
    two-thread training."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, *command, "--no-report", option, *values[i::jobs]], env=env)
                for i in range(min(jobs, len(values)))]
    if any([child.wait() != 0 for child in children]):  # a list: wait for every child
        raise SystemExit("a training process failed (its output is above); re-run to continue from the cache")
