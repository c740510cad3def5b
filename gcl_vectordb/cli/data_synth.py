"""`gcl-vdb data synth --out DIR`: write the synthetic Marqo-GS benchmark (docs/protocol.md,
"The synthetic benchmark")."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render


class SynthFormat(StrEnum):
    official = "official"
    parquet = "parquet"


def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write; it must be empty unless --overwrite.")],
    products: Annotated[int, typer.Option(min=10, help="Catalogue size to draw products from.")] = 3000,
    queries: Annotated[int, typer.Option(min=5, help="Distinct queries (1–3 attributes each).")] = 400,
    image_size: Annotated[
        int, typer.Option("--image-size", min=16, max=512, help="Image side in pixels.")
    ] = 64,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same files.")] = 0,
    layout: Annotated[
        SynthFormat, typer.Option("--format", help="official (JSON + CSV + JPEG files) or parquet (HF).")
    ] = SynthFormat.official,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Draw product images.")] = True,
    results_per_query: Annotated[
        int, typer.Option("--results-per-query", min=1, help="Length N of each ranked list.")
    ] = 50,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a dataset already in --out.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Generate a synthetic Marqo-GS benchmark: drawn products, natural queries, graded result lists.

    Writes the official layout (corpus_1/2.json, split CSVs, gt and queries JSON, JPEGs) or HF parquet.

    Then reads it back and prints the same summary as `gcl-vdb data info`.

    Example: [bold]gcl-vdb data synth --out /tmp/gs --products 2000 --queries 300 --seed 1[/bold]
    """
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    config = SynthConfig(
        out=out, products=products, queries=queries, image_size=image_size, seed=seed, format=layout.value,
        images=images, results_per_query=results_per_query, overwrite=overwrite,
    )
    with render.rich_progress() as progress:
        report = synthesize(config, progress)
    if json_output:
        render.print_json(report)
        return
    render.print_dataset_info(report.info)
    render.info(
        f"wrote {report.info.layout} layout to {config.out}: {report.queries_train:,} train + "
        f"{report.queries_unseen:,} unseen queries, {report.images:,} images, in {report.seconds:.1f} s"
    )
