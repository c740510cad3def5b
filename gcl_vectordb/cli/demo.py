"""`gcl-vdb demo`: the whole pipeline offline on the synthetic dataset and the embedded store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render


def demo_command(
    work: Annotated[
        Path | None, typer.Option("--work", help="Folder for the dataset, runs and model (default gcl-vdb-work).")
    ] = None,
    qdrant: Annotated[
        str | None, typer.Option("--qdrant", help="Store folder or URL (default: the `store` setting).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection of the GCL model (default gs10m).")
    ] = None,
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
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the offline demo: synthetic data → GCL training → ONNX export → ingest → queries → evaluation.

    Re-running skips the stages that finished with the same settings, so an interrupted demo continues.

    Examples:

      gcl-vdb demo

      gcl-vdb demo --baseline        # also train with the CLIP loss and compare
    """
    from gcl_vectordb.cli.demo_pipeline import DemoConfig, run_demo
    from gcl_vectordb.settings import WORK_DIR, resolve_settings

    settings = resolve_settings(store=qdrant, collection=collection)
    config = DemoConfig(work=work or WORK_DIR, store=settings.store, collection=settings.collection,
                        products=products, queries=queries, epochs=epochs, max_steps=max_steps, baseline=baseline,
                        fresh=fresh, train_overrides=tuple(overrides or ()))
    with render.rich_progress() as progress:
        report = run_demo(config, progress, on_stage=None if json_output else render.demo_stage)
    if json_output:
        render.print_json(report)
    else:
        render.demo_summary(report)
