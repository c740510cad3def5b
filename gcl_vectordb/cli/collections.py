"""`gcl-vdb collections list|info|drop`: what the store holds, and removing a collection.

The store (and with it qdrant) is imported inside the commands, so `gcl-vdb --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gcl_vectordb.cli import render

if TYPE_CHECKING:
    from gcl_vectordb.store.catalog import CollectionInfo, StoreTarget

app = typer.Typer(no_args_is_help=True)

QdrantOption = Annotated[
    str | None,
    typer.Option(
        "--qdrant", metavar="PATH|URL",
        help="Store folder (embedded engine) or http(s):// URL of a Qdrant server; default: the `store` "
             "setting (GCL_VDB_STORE, gcl-vdb.toml). The server API key comes from $QDRANT_API_KEY.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for machines) instead of a table.")]
NameArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]


def _target(qdrant: str | None) -> StoreTarget:
    from gcl_vectordb.settings import resolve_settings
    from gcl_vectordb.store.catalog import StoreTarget

    settings = resolve_settings(store=qdrant)
    return StoreTarget(settings.store, settings.api_key)


@app.command("list")
def list_collections(qdrant: QdrantOption = None, json_output: JsonOption = False) -> None:
    """List the collections in the store: points, dim, model, field weights, creation time.

    Example: gcl-vdb collections list --qdrant gcl-vdb-store
    """
    from gcl_vectordb.store.catalog import describe_collections

    target = _target(qdrant)
    infos = describe_collections(target)
    if json_output:
        render.print_json(infos)
        return
    if not infos:
        render.info(f"no collections in {target.location} — create one with `gcl-vdb ingest --collection NAME`")
        return
    render.print_table(
        f"collections in {target.location}", ["name", "points", "dim", "model", "fields", "created"],
        [_row(info) for info in infos], right_align=["points", "dim"],
    )


def _row(info: CollectionInfo) -> list[object]:
    record = info.record
    weights = ", ".join(f"{k} {v:g}" for k, v in record.field_weights.as_dict().items())
    points = info.points if info.points is not None else info.note
    return [info.name, points, record.dim, record.model_ref, weights, record.created_at[:16].replace("T", " ")]


@app.command("info")
def info(name: NameArgument, qdrant: QdrantOption = None, json_output: JsonOption = False) -> None:
    """Show one collection: its record (model, dim, field weights, dataset, ingest settings) and size.

    Example: gcl-vdb collections info gs10m --json
    """
    from gcl_vectordb.store.catalog import describe_collection

    described = describe_collection(_target(qdrant), name)
    if json_output:
        render.print_json(described)
        return
    record = described.record
    rows = [
        ("name", described.name), ("store", described.location),
        ("points", described.points if described.points is not None else described.note),
        *((f"corpus {c} points", n) for c, n in described.corpus_points.items()),
        ("dim", record.dim), ("model", record.model_ref), ("vectors", ", ".join(record.vectors)),
        ("distance", record.distance), ("field weights", _row(described)[4]),
        ("dataset root", record.dataset_root), ("created at", record.created_at),
        ("created by", f"gcl-vdb {record.created_by}"),
        *((f"ingest {k}", v) for k, v in record.ingest.items()),
        *((f"extra {k}", v) for k, v in record.extra.items()),
    ]
    render.print_table(f"collection {name}", ["property", "value"], rows)


@app.command("drop")
def drop(
    name: NameArgument,
    qdrant: QdrantOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Drop without asking for confirmation.")] = False,
) -> None:
    """Delete a collection and everything in it (asks first unless --yes).

    Example: gcl-vdb collections drop gs10m --yes
    """
    from gcl_vectordb.store.catalog import describe_collection, drop_collection

    target = _target(qdrant)
    if not yes:
        described = describe_collection(target, name)
        size = f"{described.points:,} points" if described.points is not None else "in use"
        if not render.confirm(f"drop collection {name} ({size}) from {target.location}?"):
            render.info(f"kept collection {name}")
            raise typer.Exit(1)
    dropped = drop_collection(target, name)
    points = f"{dropped.points:,} points" if dropped.points is not None else "its points"
    render.info(f"dropped collection {name} ({points}) from {target.location}")
