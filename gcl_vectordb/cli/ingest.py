"""`gcl-vdb ingest`: load a dataset's two corpora into a collection (resumable, idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render
from gcl_vectordb.cli.collections import JsonOption, QdrantOption
from gcl_vectordb.cli.pairs import parse_weights


def ingest_command(
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection to fill; default: the `collection` setting.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset folder (Marqo-GS official or parquet layout); "
                                                 "default: the `data` setting.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="ONNX bundle folder, checkpoint or architecture; default: "
                                                 "the `model` setting.")
    ] = None,
    qdrant: QdrantOption = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Products per batch (upsert and resume unit).")
    ] = 128,
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="Image decoding processes; default: one per CPU; "
                                                          "0: decode in a thread.")
    ] = None,
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
    shards: Annotated[int, typer.Option("--shards", min=1, help="Shards (Qdrant server only).")] = 1,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas (Qdrant server only).")] = 1,
    json_output: JsonOption = False,
) -> None:
    """Embed every product of a dataset (both corpora) and load it into a collection.

    Images are decoded in parallel processes while the model embeds and the store writes. Re-running
    the same command after a crash or Ctrl-C continues where it stopped; after a complete run it
    changes nothing. Rejected products (missing or corrupt image, empty title, repeated id) go to
    the rejects file with the reason.

    Example: [bold]gcl-vdb ingest --collection gs10m --data gcl-vdb-work/data --model gcl-vdb-work/model[/bold]
    """
    from gcl_vectordb.ingest import IngestConfig, ingest_dataset
    from gcl_vectordb.settings import resolve_settings

    weights = parse_weights(fields, "--fields") if fields is not None else None
    settings = resolve_settings(store=qdrant, data=data, collection=collection, model=model)
    config = IngestConfig(
        collection=settings.collection, data=settings.data, model_ref=settings.model, store=settings.store,
        api_key=settings.api_key, batch_size=batch_size, workers=workers, build_index=not no_index,
        rejects=rejects, shards=shards, replicas=replicas,
        **({"field_weights": weights} if weights is not None else {}),
    )
    with render.rich_progress() as progress:
        report = ingest_dataset(config, progress)
    if json_output:
        render.print_json(report)
    else:
        render.ingest_summary(report)
