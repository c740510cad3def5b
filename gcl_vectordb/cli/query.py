"""`gcl-vdb query "red summer dress"`: search a collection with its own model; table, JSON or HTML page.

Cold start matters here (one process per query): this module imports only the search path, and an
ONNX bundle is served without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import CollectionOption, JsonOption, QdrantOption, parse_filters, parse_weights
from gcl_vectordb.domain import FusionMethod, SearchMode
from gcl_vectordb.search import QueryConfig, QueryResult, query, write_results_page
from gcl_vectordb.settings import resolve_settings

app = command_app()


@app.command("query")
def query_command(
    text: Annotated[str, typer.Argument(help="What to search for.", show_default=False)],
    collection: CollectionOption = None,
    qdrant: QdrantOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Results to show.")] = 10,
    mode: Annotated[
        SearchMode, typer.Option("--mode", help="fused vector, image or title vector alone, rrf of image and title, "
                                                "weighted sum of image and title cosines, bm25 keyword search in "
                                                "the titles (no model), or hybrid: fused + bm25 fused by --fusion.")
    ] = SearchMode.fused,
    fusion: Annotated[
        FusionMethod | None, typer.Option("--fusion", help="How --mode hybrid fuses the fused-vector and BM25 "
                                                           "rankings: rrf (reciprocal rank) or dbsf (score "
                                                           "distribution). Default: rrf.", show_default=False)
    ] = None,
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

    Keyword and hybrid: [bold]gcl-vdb query "nordlys 42 boots" --mode hybrid --fusion dbsf[/bold]
    """
    if weights is not None and mode is not SearchMode.weighted:
        raise typer.BadParameter(f"weights apply to --mode weighted, not {mode.value}", param_hint="--weights")
    if fusion is not None and mode is not SearchMode.hybrid:
        raise typer.BadParameter(f"fusion applies to --mode hybrid, not {mode.value}", param_hint="--fusion")
    parsed_weights = parse_weights(weights, "--weights") if weights is not None else None
    corpus, exact_matches = parse_filters(filters or [], "--filter")
    settings = resolve_settings(store=qdrant, collection=collection)
    config = QueryConfig(
        text=text, collection=settings.collection, store=settings.store, api_key=settings.api_key,
        mode=mode, limit=limit, weights=parsed_weights, corpus=corpus, filters=exact_matches, exact=exact,
        fusion=fusion,
    )
    result = query(config)
    page = write_results_page(result, html) if html is not None else None
    if json_output:
        output.print_json(result)
    else:
        print_hits(result)
    if page is not None:  # stderr under --json, so that stdout stays one JSON document
        (output.note if json_output else output.info)(f"results page: {page}")


def print_hits(result: QueryResult) -> None:
    """Rank, score, product id, title, corpus."""
    where = f", corpus {result.corpus}" if result.corpus is not None else ""
    where += "".join(f", {k}={v}" for k, v in result.filters.items())
    output.print_table(
        f'"{result.query}" in {result.collection} (mode {result.describe_mode()}{where}; '
        f"{result.seconds['total'] * 1000:.0f} ms)",
        ["rank", "score", "product id", "title", "corpus"],
        [(hit.rank, hit.score, hit.product_id, hit.title, hit.corpus) for hit in result.hits],
        right_align=["rank", "score", "corpus"],
    )
    if not result.hits:
        output.info("no results")
