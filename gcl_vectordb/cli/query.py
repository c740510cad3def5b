"""`gcl-vdb query "red summer dress"`: search a collection with its own model; table, JSON or HTML page.

Cold start matters here (one process per query): nothing heavy is imported before the command runs,
and an ONNX bundle is served without torch.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render
from gcl_vectordb.cli.collections import JsonOption, QdrantOption
from gcl_vectordb.cli.pairs import parse_filters, parse_weights


class Mode(StrEnum):
    fused = "fused"
    image = "image"
    title = "title"
    rrf = "rrf"
    weighted = "weighted"


def query_command(
    text: Annotated[str, typer.Argument(help="What to search for.", show_default=False)],
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection to search; default: the `collection` setting.")
    ] = None,
    qdrant: QdrantOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Results to show.")] = 10,
    mode: Annotated[
        Mode, typer.Option("--mode", help="fused vector, image or title vector alone, rrf of image and title, "
                                          "or weighted sum of image and title cosines.")
    ] = Mode.fused,
    weights: Annotated[
        str | None, typer.Option("--weights", metavar="image=A,title=B",
                                 help="Weights of --mode weighted; default: the collection's field weights.")
    ] = None,
    filters: Annotated[
        list[str] | None, typer.Option("--filter", metavar="KEY=VALUE",
                                       help="Exact payload match, e.g. corpus=1 (repeatable).")
    ] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact search instead of the HNSW index.")] = False,
    json_output: JsonOption = False,
    html: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help="Also write a results page with thumbnails.")
    ] = None,
) -> None:
    """Search a collection: the query is embedded with the model that built the collection.

    Example: [bold]gcl-vdb query "red summer dress" --collection gs10m --limit 10 --mode rrf --html results.html[/bold]
    """
    from gcl_vectordb.search import QueryConfig, query
    from gcl_vectordb.settings import resolve_settings

    if weights is not None and mode is not Mode.weighted:
        raise typer.BadParameter(f"weights apply to --mode weighted, not {mode.value}", param_hint="--weights")
    parsed_weights = parse_weights(weights, "--weights") if weights is not None else None
    corpus, exact_matches = parse_filters(filters or [], "--filter")
    settings = resolve_settings(store=qdrant, collection=collection)
    config = QueryConfig(
        text=text, collection=settings.collection, store=settings.store, api_key=settings.api_key,
        mode=mode.value, limit=limit, weights=parsed_weights, corpus=corpus, filters=exact_matches, exact=exact,
    )
    result = query(config)
    page = None
    if html is not None:
        from gcl_vectordb.search import write_results_page

        page = write_results_page(result, html)
    if json_output:
        render.print_json(result)
    else:
        render.query_results(result)
    if page is not None:  # stderr under --json, so that stdout stays one JSON document
        (render.note if json_output else render.info)(f"results page: {page}")
