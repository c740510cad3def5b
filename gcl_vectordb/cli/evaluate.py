"""`gcl-vdb evaluate`: the GCL ranking evaluation of a collection, through Qdrant."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render
from gcl_vectordb.errors import ConfigError


class SplitChoice(StrEnum):
    all = "all"
    in_domain = "in-domain"
    novel_query = "novel-query"
    novel_doc = "novel-doc"
    zero_shot = "zero-shot"


class VectorChoice(StrEnum):
    fused = "fused"
    image = "image"
    title = "title"


def evaluate_command(
    split: Annotated[SplitChoice, typer.Option("--split", help="Split to evaluate, or all four.")] = SplitChoice.all,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection to evaluate; default: the `collection` setting.")
    ] = None,
    qdrant: Annotated[
        str | None,
        typer.Option("--qdrant", metavar="PATH|URL", help="Store folder or http(s):// Qdrant URL; default: the "
                     "`store` setting. The server API key comes from $QDRANT_API_KEY."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset folder; default: the one the collection was built from.")
    ] = None,
    top_q: Annotated[int, typer.Option("--top-q", min=1, help="Test queries sampled per split (capped at the "
                                       "split's queries).")] = 2000,
    k: Annotated[int, typer.Option("--k", min=1, help="Retrieval depth and ground-truth cap.")] = 1000,
    vector: Annotated[
        VectorChoice, typer.Option("--vector", help="Document vector to search: fused (image+title), image or title.")
    ] = VectorChoice.fused,
    approx: Annotated[
        bool, typer.Option("--approx", help="Search the HNSW index instead of exact search; also runs exact search "
                           "and reports what the index costs.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Query sampling seed (the protocol uses 1).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Queries per embedding/search batch.")] = 256,
    save_run: Annotated[
        Path | None, typer.Option("--save-run", metavar="DIR", help="Write run.<split>.trec, qrels.<split>.trec "
                                  "and queries.<split>.tsv (TREC ids → query text) into DIR.")
    ] = None,
    check_bruteforce: Annotated[
        bool, typer.Option("--check-bruteforce", help="Also rank with numpy over the stored vectors and check that "
                           "Qdrant's exact run gives the same ranking and metrics.")
    ] = False,
    json_out: Annotated[
        str | None, typer.Option("--json", metavar="FILE|-", help="Write the full report (all @k tables, settings, "
                                 "versions) as JSON to FILE, or print it with -.")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE", help="Write the report as CSV: one row per split.")
    ] = None,
) -> None:
    """Evaluate ranking quality with the GCL protocol: sampled test queries, exact top-k through Qdrant,
    NDCG@10, mERR, mRBP7/8/9, MAP@1000, MRR@1000.

    Examples:

      gcl-vdb evaluate --split novel-doc --collection gs10m

      gcl-vdb evaluate --split all --json report.json --save-run runs/

      gcl-vdb evaluate --split in-domain --approx --top-q 500
    """
    from gcl_vectordb.evaluation.runner import EvalConfig, evaluate
    from gcl_vectordb.settings import resolve_settings

    for target in (json_out, csv_out):  # fail before a long run, not after it
        if target not in (None, "-") and not Path(target).resolve().parent.is_dir():
            raise ConfigError(f"cannot write the report to {target}: its folder does not exist",
                              "create the folder or choose another path")
    settings = resolve_settings(store=qdrant, collection=collection)
    config = EvalConfig(
        splits=(split.value,), collection=settings.collection, store=settings.store, api_key=settings.api_key,
        data=data, default_data=settings.data, top_q=top_q, k=k, vector=vector.value, approx=approx, seed=seed,
        save_run=save_run, check_bruteforce=check_bruteforce, batch_size=batch_size,
    )
    with render.rich_progress() as progress:
        report = evaluate(config, progress)
    if json_out is not None and json_out != "-":
        report.write_json(Path(json_out))
    if csv_out is not None:
        report.write_csv(csv_out)
    if json_out == "-":
        render.print_json(report.to_dict())
        return
    render.evaluation_report(report)
    for path in (json_out, csv_out):
        if path is not None:
            render.info(f"report written to {path}")
