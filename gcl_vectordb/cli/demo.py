"""`gcl-vdb demo`: the whole pipeline offline on the synthetic dataset and the embedded store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.demo_pipeline import DemoConfig, DemoReport, StageRun, run_demo
from gcl_vectordb.cli.evaluate import HEADLINE_NAMES
from gcl_vectordb.cli.options import CollectionOption, JsonOption, QdrantOption
from gcl_vectordb.settings import WORK_DIR, resolve_settings

app = command_app()


@app.command("demo")
def demo_command(
    work: Annotated[
        Path | None, typer.Option("--work", help="Folder for the dataset, runs and model (default gcl-vdb-work).")
    ] = None,
    qdrant: QdrantOption = None,
    collection: CollectionOption = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also train the CLIP-loss model and compare side by side.")
    ] = False,
    products: Annotated[int, typer.Option("--products", min=50, help="Synthetic catalogue size.")] = 3000,
    queries: Annotated[int, typer.Option("--queries", min=20, help="Synthetic queries.")] = 400,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs (default: trainer's).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop training after this many steps.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-o", metavar="KEY=VALUE", help="Training setting, as in `gcl-vdb train -o` (repeatable)."),
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Run every stage again, ignoring finished ones.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Run the offline demo: synthetic data → GCL training → ONNX export → ingest → queries → evaluation.

    Re-running skips the stages that finished with the same settings, so an interrupted demo continues.

    Examples:

      gcl-vdb demo

      gcl-vdb demo --baseline        # also train with the CLIP loss and compare
    """
    settings = resolve_settings(store=qdrant, collection=collection)
    config = DemoConfig(work=work or WORK_DIR, store=settings.store, collection=settings.collection,
                        products=products, queries=queries, epochs=epochs, max_steps=max_steps, baseline=baseline,
                        fresh=fresh, train_overrides=tuple(overrides or ()))
    with output.ProgressBars() as progress:
        report = run_demo(config, progress, on_stage=None if json_output else print_stage)
    if json_output:
        output.print_json(report)
    else:
        print_summary(report)


def print_stage(stage: StageRun) -> None:
    """One line as each demo stage ends."""
    mark = "[green]✓[/green]" if stage.status == "ran" else "[dim]↷ skipped (done earlier)[/dim]"
    seconds = f" {stage.seconds:.1f} s" if stage.status == "ran" else ""
    output.error_console.print(f"{mark} [bold]{stage.name}[/bold]{seconds} — {stage.detail}", soft_wrap=True)


def print_summary(report: DemoReport) -> None:
    """Stages, the showcase queries' top results, the evaluation per split (side by side with the baseline)."""
    output.print_table(
        f"gcl-vdb demo in {report.work} — {report.seconds:.0f} s",
        ["stage", "status", "seconds", "what"],
        [(s.name, s.status, f"{s.seconds:.1f}", s.detail) for s in report.stages],
        right_align=["seconds"],
    )
    for loss, results in report.queries.items():
        for result in results:
            output.print_table(
                f"{loss}: “{result.query}” in {result.collection}",
                ["rank", "score", "title"],
                [(h.rank, f"{h.score:.4f}", h.title) for h in result.hits[:5]],
                right_align=["rank", "score"],
            )
    losses = list(report.evaluations)
    columns = ["split", "metric", *losses] + (["change"] if len(losses) == 2 else [])
    rows = []
    for split in report.evaluations[losses[0]]:
        for metric in ("ndcg@10", "err", "rbp@0.8"):
            values = [report.evaluations[loss][split][metric] for loss in losses]
            row: list[Any] = [split, HEADLINE_NAMES.get(metric, metric), *values]
            if len(values) == 2:  # GCL relative to the CLIP baseline
                row.append(f"{(values[0] - values[1]) / values[1]:+.1%}" if values[1] else "—")
            rows.append(row)
    output.print_table("ranking quality (GCL protocol, exact search)", columns, rows, right_align=columns[2:])
    output.info(f"results page with images: {report.html}")
    output.info(f"try: gcl-vdb query \"red summer dress\" --collection {report.collections.get('gcl', 'gs10m')}")
