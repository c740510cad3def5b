"""`gcl-vdb data download`: fetch a Marqo-GS sub-dataset from the public archives (or a mirror)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render


class SubsetName(StrEnum):
    wfash_1m = "wfash-1m"
    fashion_5m = "fashion-5m"
    full_10m = "full-10m"


def download_command(
    subset: Annotated[
        SubsetName,
        typer.Option(
            "--subset", case_sensitive=False,
            help="Which sub-dataset: wfash-1m (women's fashion, smallest), fashion-5m or full-10m.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to download and extract into (created).")],
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", envvar="GCL_VDB_DOWNLOAD_BASE_URL", show_default=False,
            help="Mirror holding the same archive names (default: the public Marqo S3 bucket).",
        ),
    ] = None,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Fetch only the dataset tar (queries, judgments, corpora).")
    ] = False,
    keep_archives: Annotated[
        bool,
        typer.Option("--keep-archives/--delete-archives", help="Keep the .tar files after extraction."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Download and extract a Marqo-GS sub-dataset; resumable (run it again after an interruption).

    Example: gcl-vdb data download --subset wfash-1m --out data/gs
    """
    from gcl_vectordb.data.download import DEFAULT_BASE_URL, DownloadConfig, download_subset

    config = DownloadConfig(
        subset=subset.value, out=out, base_url=base_url or DEFAULT_BASE_URL,
        images=not no_images, keep_archives=keep_archives,
    )
    with render.rich_progress() as progress:
        report = download_subset(config, progress)
    if json_output:
        render.print_json(report)
        return
    render.print_table(
        f"{report.subset}: {report.fetched} archive(s) fetched, {report.skipped} already done",
        ["archive", "status", "received (bytes)", "files"],
        [(a.name, a.status, a.received, a.files) for a in report.archives],
        right_align=["received (bytes)", "files"],
    )
    render.info(f"data:   {report.data_dir}")
    render.info(f"images: {report.images_dir if report.images_dir else '— (not downloaded: --no-images)'}")
    render.info(f"next:   gcl-vdb data info {report.data_dir}")
