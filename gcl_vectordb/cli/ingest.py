"""`gcl-vdb ingest`: load a dataset's two corpora into a collection (resumable, idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import (
    CollectionOption,
    DataOption,
    ImagesDirOption,
    JsonOption,
    ModelOption,
    QdrantOption,
    StorageOption,
    StorageSetOption,
    WorkersOption,
    parse_weights,
)
from gcl_vectordb.ingest import IngestConfig, IngestReport, ingest_dataset
from gcl_vectordb.settings import resolve_settings
from gcl_vectordb.store.storage import parse_storage

app = command_app()


@app.command("ingest")
def ingest_command(
    collection: CollectionOption = None,
    data: DataOption = None,
    images_dir: ImagesDirOption = None,
    model: ModelOption = None,
    qdrant: QdrantOption = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Products per batch (upsert and resume unit).")
    ] = 128,
    workers: WorkersOption = None,
    fields: Annotated[
        str | None, typer.Option("--fields", metavar="image=A,title=B",
                                 help="GCL field weights of the fused vector; default: the existing "
                                      "collection's, else image=0.9,title=0.1.")
    ] = None,
    no_index: Annotated[
        bool, typer.Option("--no-index", help="Skip building the search index at the end.")
    ] = False,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Rejects file (JSON lines); default: next to the ingest "
                                                    "state (see the summary).")
    ] = None,
    embeddings: Annotated[
        Path | None, typer.Option("--embeddings", metavar="DIR", show_default=False,
                                  help="Load the shards `gcl-vdb embed` wrote into DIR instead of embedding "
                                       "--data with --model (no model runs; the shards name both).")
    ] = None,
    shards: Annotated[int, typer.Option("--shards", min=1, help="Shards (Qdrant server only).")] = 1,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas (Qdrant server only).")] = 1,
    storage: StorageOption = None,
    storage_set: StorageSetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Embed every product of a dataset (both corpora) and load it into a collection.

    Images are decoded in parallel processes while the model embeds and the store writes; only files
    inside the images folder are read. Re-running the same command after a crash or Ctrl-C continues
    where it stopped. Rejected products (image missing, outside the images folder, corrupt or too
    large; neither title nor image; repeated id) go to the rejects file with the reason; fix them and
    run the same command again: it retries the rejected products and says how many it recovered.

    With --embeddings DIR the products come from the parquet shards of `gcl-vdb embed` (every file is
    verified before anything is written): the bulk-load half of embedding on many GPUs.

    Example: [bold]gcl-vdb ingest --collection gs10m --data gcl-vdb-work/data --model gcl-vdb-work/model[/bold]
    """
    weights = parse_weights(fields, "--fields") if fields is not None else None
    if embeddings is not None and (data is not None or model is not None):
        raise typer.BadParameter("the shards name their model and dataset: leave --data and --model out",
                                 param_hint="--embeddings")
    settings = resolve_settings(store=qdrant, data=data, collection=collection, model=model)
    source = ({"embeddings": embeddings} if embeddings is not None
              else {"data": settings.data, "model_ref": settings.model})
    config = IngestConfig(
        collection=settings.collection, store=settings.store, **source,
        api_key=settings.api_key, batch_size=batch_size, workers=workers, build_index=not no_index,
        rejects=rejects, shards=shards, replicas=replicas, field_weights=weights, images_dir=images_dir,
        storage=parse_storage(storage, storage_set) if storage or storage_set else None,
    )
    with output.ProgressBars() as progress:
        report = ingest_dataset(config, progress)
    if json_output:
        output.print_json(report)
    else:
        print_summary(report)


def print_summary(report: IngestReport) -> None:
    """Points per corpus, rejects by reason, where the files are, timings."""
    rows = [(c.corpus, c.written, c.present, c.rejected, c.done, "yes" if c.complete else "no")
            for c in report.corpora]
    rows.append(("all", report.points_written, report.points_present, report.new_rejects,
                 sum(c.done for c in report.corpora), "yes" if all(c.complete for c in report.corpora) else "no"))
    resumed = ", ".join(f"corpus {c} at {n:,}" for c, n in report.resumed_from.items())
    output.print_table(
        f"ingest into {report.collection} ({report.store}; model {report.model_ref}, dim {report.dim})"
        + (f" — resumed: {resumed}" if resumed else ""),
        ["corpus", "written", "already stored", "rejected", "products done", "complete"], rows,
        right_align=["written", "already stored", "rejected", "products done"],
    )
    seconds = report.seconds
    stages = ", ".join(f"{k} {seconds[k]:.1f}" for k in ("verify", "read", "decode", "wait", "encode", "convert",
                                                          "prepare", "upsert", "checkpoint") if k in seconds)
    rejected = ", ".join(f"{reason} {n:,}" for reason, n in report.rejects.items()) or "none"
    retried = (f"{report.retried:,} earlier rejects: {report.recovered:,} recovered, "
               f"{report.retried - report.recovered:,} still rejected" if report.retried else "none")
    index = (f"built in {seconds.get('index', 0.0):.1f} s" if report.index_built
             else "not built (--no-index): run `gcl-vdb ingest` again without it")
    output.print_table(None, ["", "value"], [
        ("points in collection", report.points_total),
        ("throughput", f"{report.points_per_s:,.1f} points/s "
                       + (f"(from the shards in {report.embeddings})" if report.embeddings
                          else f"({report.workers} decode workers)")),
        ("seconds", f"total {seconds.get('total', 0.0):.1f}, pipeline {seconds.get('pipeline', 0.0):.1f}; "
                    f"stages: {stages}"),
        ("rejected (all runs)", rejected),
        ("retried", retried),
        ("images", str(report.images_dir)),
        ("rejects file", str(report.rejects_file)),
        ("resume state", str(report.state_file)),
        ("index", index),
    ])
    if report.missing_corpora:
        output.warn(f"the dataset has no corpus {', '.join(map(str, report.missing_corpora))}")
