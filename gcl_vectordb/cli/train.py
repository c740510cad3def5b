"""`gcl-vdb train`: fine-tune a CLIP model with GCL on a Marqo-GS split (the `trainer` package, imported lazily).

`python -m trainer train ...` runs this same command, and so does every rank under
`torchrun --nproc_per_node=N -m trainer train ...`; only rank 0 prints.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import EXIT_INTERRUPTED, command_app
from gcl_vectordb.cli.options import DataOption, JsonOption
from gcl_vectordb.settings import resolve_settings

if TYPE_CHECKING:
    from trainer.records import TrainResult

app = command_app()


class LossKind(StrEnum):
    gcl = "gcl"
    clip = "clip"


@app.command("train")
def train_command(
    out: Annotated[Path | None, typer.Option("--out", help="Run folder: checkpoints, metrics.jsonl, run.json.")] = None,
    data: DataOption = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML (or YAML) file of training settings.", exists=True)
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model to start from: gcl-tiny, ViT-B-32, a checkpoint or run folder.")
    ] = None,
    pretrained: Annotated[
        str | None, typer.Option("--pretrained", metavar="TAG|PATH", help="open_clip pretrained tag or weights file.")
    ] = None,
    loss: Annotated[LossKind | None, typer.Option("--loss", help="gcl (graded weights) or clip (the baseline).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs to train.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=2, help="Pairs per process and step.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-o", metavar="KEY=VALUE", help="Override a setting, e.g. -o optim.lr=1e-3 (repeatable)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Fine-tune with the GCL loss: checkpoints every epoch and on Ctrl-C, evaluation on held-out queries.

    Settings: defaults < --config file < the flags < -o key=value overrides.

    Examples:

      gcl-vdb train --data gcl-vdb-work/data --out gcl-vdb-work/runs/gcl

      gcl-vdb train --out runs/clip --loss clip --epochs 2 -o optim.lr=1e-4 -o eval.holdout_fraction=0.1

      gcl-vdb train --out runs/gcl --resume

      torchrun --nproc_per_node=2 -m trainer train --data DIR --out RUN_DIR
    """
    from trainer.config import load_config  # cold start: torch, only when training
    from trainer.recipe import run_training

    updates = {
        "out": out, "data.root": data, "model.name": model, "model.pretrained": pretrained,
        "loss.kind": loss.value if loss else None, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
    }
    config = load_config(config_file, updates=updates, overrides=overrides or ())
    if config.data.root is None:  # neither flag, file nor override: the `data` setting
        config = replace(config, data=replace(config.data, root=resolve_settings().data))
    with output.ProgressBars() as progress:
        result = run_training(config, resume=resume, progress=progress)
    if not result.is_main:
        return
    if json_output:
        output.print_json(result)
    else:
        print_run(result)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def print_run(result: TrainResult) -> None:
    """The run just trained: steps, loss, evaluation before → after."""
    before, after = result.eval_before or {}, result.eval_after or {}
    rows = [
        ["steps", f"{result.steps:,} of {result.total_steps:,}"],
        ["epochs completed", result.epochs_completed],
        ["training pairs", f"{result.data.train_pairs:,} ({result.data.train_queries:,} queries)"],
        ["final loss", result.final_loss],
    ]
    for metric in ("ndcg@10", "err"):
        if metric in after:
            shown = f"{after[metric]:.4f}"
            if metric in before:
                shown = f"{before[metric]:.4f} → {shown}"
            rows.append([f"eval {metric} ({result.data.eval_queries} held-out queries)", shown])
    rows += [
        ["checkpoint", str(result.checkpoint) if result.checkpoint else None],
        ["seconds", f"{result.seconds:.1f}"],
        ["pairs/s", f"{result.pairs_per_second:.1f}"],
    ]
    if result.rejected:
        rows.append(["rejected rows", ", ".join(f"{k} {v:,}" for k, v in sorted(result.rejected.items()))])
    output.print_table(f"training run {result.run_dir}", ["", "value"], rows)
    if result.interrupted:
        output.warn(f"stopped at step {result.steps} — the checkpoint is saved; "
             f"continue with the same command and --resume")
