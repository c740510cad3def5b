"""`gcl-vdb collections list|info|drop|add-bm25`: what the store holds, removing a collection, and giving
an older one the BM25 vector of keyword search."""

from __future__ import annotations

from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import JsonOption, QdrantOption
from gcl_vectordb.settings import resolve_settings
from gcl_vectordb.store.bm25 import Bm25Settings
from gcl_vectordb.store.catalog import (
    CollectionInfo,
    StoreTarget,
    add_bm25,
    describe_collection,
    describe_collections,
    drop_collection,
)

app = command_app(no_args_is_help=True, help="List, inspect, drop and upgrade the collections in the store.")

NameArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]


def _target(qdrant: str | None) -> StoreTarget:
    settings = resolve_settings(store=qdrant)
    return StoreTarget(settings.store, settings.api_key)


@app.command("list")
def list_collections(qdrant: QdrantOption = None, json_output: JsonOption = False) -> None:
    """List the collections in the store: points, dim, model, field weights, creation time.

    Example: gcl-vdb collections list --qdrant gcl-vdb-store
    """
    target = _target(qdrant)
    infos = describe_collections(target)
    if json_output:
        output.print_json(infos)
        return
    if not infos:
        output.info(f"no collections in {target.location} — create one with `gcl-vdb ingest --collection NAME`")
        return
    output.print_table(
        f"collections in {target.location}", ["name", "points", "dim", "model", "fields", "created"],
        [_row(info) for info in infos], right_align=["points", "dim"],
    )


def _weights(info: CollectionInfo) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in info.record.field_weights.as_dict().items())


def _row(info: CollectionInfo) -> list[object]:
    record = info.record
    points = f"{info.points:,}" if info.points is not None else info.note
    if record.progress is not None and not record.progress.complete:  # `collections info` says how far
        points = f"{points}\n(incomplete)"
    return [info.name, points, record.dim, record.model_ref, _weights(info), record.created_at[:16].replace("T", " ")]


def _bm25(settings: Bm25Settings | None) -> str:
    if settings is None:
        return "none (made before keyword search: `gcl-vdb collections add-bm25 NAME`)"
    return f"k {settings.k:g}, b {settings.b:g}, avg_len {settings.avg_len:g}, {settings.language}"


@app.command("info")
def info(name: NameArgument, qdrant: QdrantOption = None, json_output: JsonOption = False) -> None:
    """Show one collection: its record (model, dim, field weights, storage, dataset, ingest settings) and size.

    Example: gcl-vdb collections info gs10m --json
    """
    described = describe_collection(_target(qdrant), name)
    if json_output:
        output.print_json(described)
        return
    record = described.record
    rows = [
        ("name", described.name), ("store", described.location),
        ("points", described.points if described.points is not None else described.note),
        *((f"corpus {c} points", n) for c, n in described.corpus_points.items()),
        ("ingest", described.status),
        ("dim", record.dim), ("model", record.model_ref),
        ("model identity", f"weights sha256 {record.identity.weights_sha256}, preprocessing "
                           f"{record.identity.preprocessing.digest()}" if record.identity is not None
         else "not recorded (created before gcl-vdb recorded it)"),
        ("vectors", ", ".join(record.vectors)),
        ("distance", record.distance), ("field weights", _weights(described)),
        ("storage", record.storage.name),
        *((f"storage {key}", value) for key, value in record.storage.describe().items()),
        ("bm25", _bm25(record.bm25)),
        ("dataset root", record.dataset_root), ("created at", record.created_at),
        ("created by", f"gcl-vdb {record.created_by}"),
        *((f"ingest {k}", v) for k, v in record.ingest.items()),
        *((f"extra {k}", v) for k, v in record.extra.items()),
    ]
    output.print_table(f"collection {name}", ["property", "value"], rows)


@app.command("drop")
def drop(
    name: NameArgument,
    qdrant: QdrantOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Drop without asking for confirmation.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete a collection and everything in it (asks first unless --yes).

    Example: gcl-vdb collections drop gs10m --yes
    """
    target = _target(qdrant)
    if not yes:
        described = describe_collection(target, name)
        size = f"{described.points:,} points" if described.points is not None else "in use"
        if not output.confirm(f"drop collection {name} ({size}) from {target.location}?"):
            output.note(f"kept collection {name}")
            raise typer.Exit(1)
    dropped = drop_collection(target, name)
    if json_output:
        output.print_json(dropped)
        return
    points = f"{dropped.points:,} points" if dropped.points is not None else "its points"
    output.info(f"dropped collection {name} ({points}) from {target.location}")


@app.command("add-bm25")
def add_bm25_command(name: NameArgument, qdrant: QdrantOption = None, json_output: JsonOption = False) -> None:
    """Add the BM25 sparse vector of keyword search (`query --mode bm25|hybrid`) to a collection made
    before gcl-vdb had it: reads the stored titles, needs no model and no dataset. Safe to stop and
    run again.

    Example: gcl-vdb collections add-bm25 gs10m
    """
    with output.ProgressBars() as progress:
        described, added = add_bm25(_target(qdrant), name, progress)
    if json_output:
        output.print_json({"collection": described, "added": added})
        return
    if not added:
        output.info(f"collection {name} has BM25 already ({_bm25(described.record.bm25)})")
        return
    points = f"{described.points:,} points" if described.points is not None else "its points"
    output.info(f"added BM25 to collection {name} ({points}): `gcl-vdb query --mode bm25|hybrid` works now")
