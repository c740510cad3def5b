"""`gcl-vdb data synth|download|info`: create, download and inspect Marqo-GS datasets."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import ImagesDirOption, JsonOption
from gcl_vectordb.data.download import DEFAULT_BASE_URL, DownloadConfig, download_subset
from gcl_vectordb.data.hub import HubDownloadConfig, download_hub
from gcl_vectordb.data.info import DatasetInfo, dataset_info
from gcl_vectordb.data.records import SPLITS
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.settings import DEFAULTS, ENV_VARS, hub_token, resolve_settings

app = command_app(no_args_is_help=True, help="Create, download and inspect Marqo-GS datasets.")


class SynthFormat(StrEnum):
    official = "official"
    parquet = "parquet"


class SubsetName(StrEnum):
    wfash_1m = "wfash-1m"
    fashion_5m = "fashion-5m"
    full_10m = "full-10m"


@app.command("synth")
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
    json_output: JsonOption = False,
) -> None:
    """Generate a synthetic Marqo-GS benchmark: drawn products, natural queries, graded result lists.

    Writes the official layout (corpus_1/2.json, split CSVs, gt and queries JSON, JPEGs) or HF parquet,
    then reads it back and prints the same summary as `gcl-vdb data info`.

    Example: [bold]gcl-vdb data synth --out /tmp/gs --products 2000 --queries 300 --seed 1[/bold]
    """
    config = SynthConfig(
        out=out, products=products, queries=queries, image_size=image_size, seed=seed, format=layout.value,
        images=images, results_per_query=results_per_query, overwrite=overwrite,
    )
    with output.ProgressBars() as progress:
        report = synthesize(config, progress)
    if json_output:
        output.print_json(report)
        return
    print_dataset_info(report.info)
    output.info(
        f"wrote {report.info.layout} layout to {config.out}: {report.queries_train:,} train + "
        f"{report.queries_unseen:,} unseen queries, {report.images:,} images, in {report.seconds:.1f} s"
    )


class Source(StrEnum):
    s3 = "s3"
    hf = "hf"


@app.command("download")
def download(
    out: Annotated[Path, typer.Option("--out", help="Folder to download and extract into (created).")],
    subset: Annotated[
        SubsetName | None,
        typer.Option("--subset", case_sensitive=False, show_default=False,
                     help="--source s3: which sub-dataset: wfash-1m (women's fashion, smallest), fashion-5m or "
                          "full-10m."),
    ] = None,
    source: Annotated[
        Source, typer.Option("--source", help="s3: Marqo's archives (official layout, images as files); hf: the "
                                             "Hugging Face parquet release of Marqo-GS-10M (images inside).")
    ] = Source.s3,
    splits: Annotated[
        str, typer.Option("--splits", metavar="A,B", help="--source hf: the splits to fetch, e.g. "
                                                          "in_domain,novel_query (default: all four).")
    ] = ",".join(s.hf_name for s in SPLITS),
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", envvar="GCL_VDB_DOWNLOAD_BASE_URL", show_default=False,
                     help="--source s3: mirror holding the same archive names (default: the public Marqo S3 "
                          "bucket)."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", envvar="HF_ENDPOINT", show_default=False,
                     help="--source hf: the hub's URL, for a mirror (default: huggingface.co)."),
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", show_default=False, help="--source hf: branch, tag or commit.")
    ] = None,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="--source s3: fetch only the dataset tar (queries, judgments, "
                                               "corpora).")
    ] = False,
    keep_archives: Annotated[
        bool, typer.Option("--keep-archives/--delete-archives", help="Keep the .tar files after extraction.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Download a Marqo-GS dataset; resumable (run it again after an interruption).

    Examples: gcl-vdb data download --subset wfash-1m --out data/gs
              gcl-vdb data download --source hf --splits in_domain,novel_query --out data/gs10m
    """
    if source is Source.hf:
        download_from_hub(out, splits, endpoint, revision, json_output)
        return
    if subset is None:
        raise typer.BadParameter("choose a sub-dataset (wfash-1m, fashion-5m, full-10m)", param_hint="--subset")
    config = DownloadConfig(
        subset=subset.value, out=out, base_url=base_url or DEFAULT_BASE_URL,
        images=not no_images, keep_archives=keep_archives,
    )
    with output.ProgressBars() as progress:
        report = download_subset(config, progress)
    if json_output:
        output.print_json(report)
        return
    output.print_table(
        f"{report.subset}: {report.fetched} archive(s) fetched, {report.skipped} already done",
        ["archive", "status", "received (bytes)", "files"],
        [(a.name, a.status, a.received, a.files) for a in report.archives],
        right_align=["received (bytes)", "files"],
    )
    output.info(f"data:   {report.data_dir}")
    output.info(f"images: {report.images_dir if report.images_dir else '— (not downloaded: --no-images)'}")
    output.info(f"next:   gcl-vdb data info {report.data_dir}")


def download_from_hub(out: Path, splits: str, endpoint: str | None, revision: str | None, json_output: bool) -> None:
    """`--source hf`: the parquet splits through the hub's client, which draws its own progress bars."""
    names = tuple(name.strip() for name in splits.split(",") if name.strip())
    report = download_hub(HubDownloadConfig(out=out, splits=names, endpoint=endpoint, revision=revision,
                                            token=hub_token()))
    if json_output:
        output.print_json(report)
        return
    output.print_table(
        f"{report.repo_id} @ {report.commit[:12]}: {report.fetched} file(s) fetched, {report.skipped} already here",
        ["file", "bytes", "status"],
        [(f.path, f.bytes, "fetched" if f.fetched else "already here") for f in report.files],
        right_align=["bytes"],
    )
    output.info(f"data:   {report.data_dir} (splits {', '.join(report.splits)})")
    output.info(f"next:   gcl-vdb data info {report.data_dir}")


@app.command("info")
def info(
    root: Annotated[
        Path | None,
        typer.Argument(show_default=False,
                       help=f"Dataset folder (official or parquet layout) (default: the `data` setting — env var "
                            f"{ENV_VARS['data']}, then gcl-vdb.toml, then {DEFAULTS['data']!r})"),
    ] = None,
    images_dir: ImagesDirOption = None,
    check_images: Annotated[
        bool, typer.Option("--check-images/--no-check-images", help="Check that every image file exists.")
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Summarise a Marqo-GS dataset: queries, pairs, products and score ranges per split; images per corpus.

    Reads everything once (streaming) and counts the rows the reader would skip, with examples.

    Example: [bold]gcl-vdb data info /tmp/gs[/bold]
    """
    folder = root if root is not None else resolve_settings().data
    summary = dataset_info(folder, check_images=check_images, images_dir=images_dir)
    if json_output:
        output.print_json(summary)
    else:
        print_dataset_info(summary)


def _score_range(bounds: tuple[float, float] | None) -> str:
    return "—" if bounds is None else f"{bounds[0]:.4g} – {bounds[1]:.4g}"


def print_dataset_info(summary: DatasetInfo) -> None:
    """The splits and corpora tables, then the rows the reader would skip (with examples)."""
    with_rejects = any(s.rejected for s in summary.splits)  # the column only where it says something
    output.print_table(
        f"{summary.root} ({summary.layout} layout; score columns: min – max)",
        ["split", "corpus", "queries", "pairs", "products", "linear", "reciprocal"]
        + (["rejected"] if with_rejects else []),
        [(s.name, s.corpus, s.queries, s.pairs, s.products, _score_range(s.score_linear),
          _score_range(s.score_reciprocal)) + ((s.rejected,) if with_rejects else ()) for s in summary.splits],
        right_align=("corpus", "queries", "pairs", "products", "rejected"),
    )
    counts = ("corpus", "products", "images", "missing", "title only", "no title", "rejected")
    output.print_table(
        None, counts,
        [(c.corpus, c.products, c.images_found, c.images_missing, c.without_image, c.without_title, c.rejected)
         for c in summary.corpora],
        right_align=counts,
    )
    if summary.missing_splits:
        output.warn(f"splits not present: {', '.join(summary.missing_splits)}")
    if summary.rejects:
        by_reason = ", ".join(f"{reason} {count:,}" for reason, count in sorted(summary.rejects.items()))
        output.warn(f"{sum(summary.rejects.values()):,} rows would be skipped ({by_reason}), e.g.:")
        for example in summary.reject_examples:
            output.note(f"  {example}")
