"""`gcl-vdb evaluate`: the GCL ranking evaluation of a collection, through Qdrant."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import CollectionOption, JsonOption, QdrantOption
from gcl_vectordb.domain import FusionMethod
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.evaluation.report import EvalReport
from gcl_vectordb.evaluation.runner import FLOAT16_NOTE, EvalConfig, evaluate
from gcl_vectordb.settings import resolve_settings

app = command_app()

HEADLINE_NAMES = {"ndcg@10": "NDCG@10", "err": "mERR", "rbp@0.7": "mRBP7", "rbp@0.8": "mRBP8",
                  "rbp@0.9": "mRBP9", "map@1000": "MAP@1000", "mrr@1000": "MRR@1000"}


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
    bm25 = "bm25"
    hybrid = "hybrid"


@app.command("evaluate")
def evaluate_command(
    split: Annotated[SplitChoice, typer.Option("--split", help="Split to evaluate, or all four.")] = SplitChoice.all,
    collection: CollectionOption = None,
    qdrant: QdrantOption = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset folder; default: the one the collection was built from.")
    ] = None,
    top_q: Annotated[int, typer.Option("--top-q", min=1, help="Test queries sampled per split (capped at the "
                                       "split's queries).")] = 2000,
    k: Annotated[int, typer.Option("--k", min=1, help="Retrieval depth and ground-truth cap.")] = 1000,
    vector: Annotated[
        VectorChoice, typer.Option("--vector", help="Document vector to search: fused (image+title), image or "
                                   "title; bm25 (keyword search in the titles, no model) or hybrid (fused + bm25, "
                                   "fused by --fusion). The official GCL scripts evaluate image: use --vector "
                                   "image for figures comparable with the paper.")
    ] = VectorChoice.fused,
    fusion: Annotated[
        FusionMethod | None, typer.Option("--fusion", help="How --vector hybrid fuses its two rankings: rrf or dbsf. "
                                          "Default: rrf.", show_default=False)
    ] = None,
    approx: Annotated[
        bool, typer.Option("--approx", help="Search the HNSW index instead of exact search; also runs exact search "
                           "and reports what the index costs.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1,
                                      help="Query sampling seed (the protocol uses 1).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Queries per embedding/search batch.")] = 256,
    save_run: Annotated[
        Path | None, typer.Option("--save-run", metavar="DIR", help="Write run.<split>.trec, qrels.<split>.trec "
                                  "and queries.<split>.tsv (TREC ids → query text) into DIR.")
    ] = None,
    check_bruteforce: Annotated[
        bool, typer.Option("--check-bruteforce", help="Also rank with numpy over the stored vectors and check that "
                           "Qdrant's exact run gives the same ranking and metrics.")
    ] = False,
    report_file: Annotated[
        Path | None, typer.Option("--report", metavar="FILE", help="Write the full report (all @k tables, "
                                  "settings, versions) as JSON to FILE.")
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE", help="Write the report as CSV: one row per split.")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Evaluate a collection whose ingest has not completed (refused "
                           "otherwise); the figures then cover only what it holds, and the report says so.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Evaluate ranking quality with the GCL protocol: sampled test queries, exact top-k through Qdrant,
    NDCG@10, mERR, mRBP7/8/9, MAP@1000, MRR@1000.

    Examples:

      gcl-vdb evaluate --split novel-doc --collection gs10m

      gcl-vdb evaluate --split all --report report.json --save-run runs/

      gcl-vdb evaluate --split in-domain --approx --top-q 500 --json

      gcl-vdb evaluate --split all --vector hybrid --fusion dbsf
    """
    if fusion is not None and vector is not VectorChoice.hybrid:
        raise typer.BadParameter(f"fusion applies to --vector hybrid, not {vector.value}", param_hint="--fusion")
    for target in (report_file, csv_file):  # fail before a long run, not after it
        if target is not None and not target.resolve().parent.is_dir():
            raise ConfigError(f"cannot write the report to {target}: its folder does not exist",
                              "create the folder or choose another path")
    settings = resolve_settings(store=qdrant, collection=collection)
    config = EvalConfig(
        splits=(split.value,), collection=settings.collection, store=settings.store, api_key=settings.api_key,
        data=data, default_data=settings.data, top_q=top_q, k=k, vector=vector.value, approx=approx, seed=seed,
        save_run=save_run, check_bruteforce=check_bruteforce, batch_size=batch_size,
        fusion=fusion or FusionMethod.rrf, allow_partial=allow_partial,
    )
    with output.ProgressBars() as progress:
        report = evaluate(config, progress)
    if report_file is not None:
        report.write_json(report_file)
    if csv_file is not None:
        report.write_csv(csv_file)
    if json_output:
        output.print_json(report.to_dict())
    else:
        print_report(report)
    for warning in report.warnings:  # after the table, where the eye lands
        output.warn(f"PARTIAL COLLECTION — {warning}")
    for path in (report_file, csv_file):
        if path is not None:
            (output.note if json_output else output.info)(f"report written to {path}")


def print_report(report: EvalReport) -> None:
    """The headline metrics (rows) per split (columns), the HNSW cost under --approx, the brute-force
    verdicts. Transposed so that four splits fit 80 columns."""
    s = report.settings
    splits = [r.split for r in report.splits]
    names = list(report.splits[0].headline()) if report.splits else []
    rows = [[HEADLINE_NAMES.get(m, m), *(r.headline()[m] for r in report.splits)] for m in names]
    rows += [["queries", *(r.n_queries for r in report.splits)],
             ["seconds", *(f"{r.timings.total_s:.1f}" for r in report.splits)]]
    output.print_table(
        f"GCL evaluation of {s.collection}: {s.search} search on {s.vector}"
        f"{f' ({s.fusion})' if s.fusion else ''}, top-{s.k}, seed {s.seed}, "
        f"model {'none (BM25)' if s.vector == 'bm25' else s.model_ref}", ["metric", *splits], rows,
        right_align=splits,
    )
    if s.vector != "image":
        output.note(f"documents: the {s.vector} vector; the published GCL runs embed documents by image alone — "
                    "for numbers comparable with the paper, run with --vector image (docs/protocol.md)")
    if s.datatype == "float16":
        output.warn(FLOAT16_NOTE % (s.collection, "fused" if s.vector == "hybrid" else s.vector))
    approx = [r for r in report.splits if r.exact_metrics is not None]
    if approx:
        deltas = [[HEADLINE_NAMES.get(m, m), *(f"{r.delta()[m]:+.4f}" for r in approx)] for m in names]
        deltas.append(["top-k overlap", *(r.hnsw_overlap for r in approx)])
        output.print_table("HNSW − exact (negative: ranking quality the index costs)",
                           ["metric", *(r.split for r in approx)], deltas, right_align=[r.split for r in approx])
    for r in report.splits:
        check = r.bruteforce
        if check is None:
            continue
        verdict = "[green]identical[/green]" if check.passed else "[bold red]DIFFERENT[/bold red]"
        output.info(
            f"brute-force check {r.split}: {verdict} — {check.n_queries} queries over {check.n_documents:,} "
            f"vectors; rankings identical up to ties: {'yes' if check.rankings_identical else 'no'}; "
            f"max |Δ score| {check.max_score_difference:.1e}; max |Δ metric| {check.max_metric_difference:.1e}"
        )
