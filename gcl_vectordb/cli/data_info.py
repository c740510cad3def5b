"""`gcl-vdb data info [DIR]`: what a dataset folder holds, per split and per corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render


def info(
    root: Annotated[
        Path | None,
        typer.Argument(help="Dataset folder (official or parquet layout); default: the `data` setting."),
    ] = None,
    images_dir: Annotated[
        Path | None,
        typer.Option("--images-dir", help="Local images; default: DIR/images, else a sibling images*."),
    ] = None,
    check_images: Annotated[
        bool, typer.Option("--check-images/--no-check-images", help="Check that every image file exists.")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a Marqo-GS dataset: queries, pairs, products and score ranges per split; images per corpus.

    Reads everything once (streaming) and counts the rows the reader would skip, with examples.

    Example: [bold]gcl-vdb data info /tmp/gs[/bold]
    """
    from gcl_vectordb.data.info import dataset_info
    from gcl_vectordb.settings import resolve_settings

    folder = root if root is not None else resolve_settings().data
    summary = dataset_info(folder, check_images=check_images, images_dir=images_dir)
    if json_output:
        render.print_json(summary)
    else:
        render.print_dataset_info(summary)
