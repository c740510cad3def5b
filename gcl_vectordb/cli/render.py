"""The only module that prints: rich tables for people, JSON for machines, one-line errors.

Command modules hand typed results to these functions; the library itself only logs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gcl_vectordb.errors import GclVdbError

console = Console(highlight=False, soft_wrap=False)
error_console = Console(stderr=True, highlight=False)


def to_jsonable(value: Any) -> Any:
    """Turn dataclasses, paths, enums and numpy scalars into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array
        return value.tolist()
    return value


def print_json(value: Any) -> None:
    """Machine output on stdout: one JSON document, nothing else."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    right_align: Sequence[str] = (),
) -> None:
    """A rich table; numbers are formatted by `format_cell`, named columns are right-aligned."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right_align else "left", overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(cell) for cell in row))
    console.print(table)


def format_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def info(message: str) -> None:
    console.print(message)


def note(message: str) -> None:
    """A remark for people on stderr (keeps stdout clean for --json)."""
    error_console.print(message, markup=False)


def warn(message: str) -> None:
    error_console.print(f"[yellow]warning:[/yellow] {message}")


def confirm(question: str) -> bool:
    """Ask a yes/no question on stderr; anything but yes (or no terminal input) means no."""
    import typer

    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False


def error(exc: GclVdbError | str) -> None:
    """One line on stderr: what went wrong — what to do."""
    error_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True, soft_wrap=True)


# --- gcl-vdb export ---------------------------------------------------------------------------------


def export_summary(manifest: Any, out: Path) -> None:
    """The bundle just written: what it holds and how closely each variant reproduces torch."""
    rows = []
    for variant, files in manifest.variants.items():
        for tower in ("text", "image"):
            name = getattr(files, tower)
            parity = manifest.parity.get(variant, {}).get(tower)
            size_mb = f"{(out / name).stat().st_size / 1e6:.1f}" if (out / name).is_file() else None
            rows.append([variant, tower, name, size_mb,
                         f"{parity.max_cosine_deviation:.2e}" if parity else None,
                         f"{parity.max_abs_diff:.2e}" if parity else None])
    print_table(
        f"ONNX bundle {out} — {manifest.architecture}, dim {manifest.embed_dim}, image {manifest.image_size} px, "
        f"opset {manifest.opset}",
        ["variant", "tower", "file", "MB", "max 1−cos vs torch", "max |Δ|"], rows,
        right_align=["MB", "max 1−cos vs torch", "max |Δ|"],
    )


class _RichTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task_id, amount)

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        self._progress.update(self._task_id, completed=completed, total=total)

    def close(self) -> None:
        self._progress.stop_task(self._task_id)


class RichProgress:
    """A `gcl_vectordb.progress.Progress` drawn with rich: bar, count, rate and ETA (stderr)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bytes = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=error_console, transient=False,
        )
        self._items = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=error_console, transient=False,
        )

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for bars in (self._bytes, self._items):
            if bars.live.is_started:
                bars.stop()

    def task(self, description: str, total: float | None = None, unit: str = "it") -> _RichTask:
        bars = self._bytes if unit == "B" else self._items
        if not bars.live.is_started:
            bars.start()
        fields = {} if unit == "B" else {"rate": ""}
        task_id = bars.add_task(description, total=total, **fields)
        if unit != "B":
            return _RateTask(bars, task_id, unit)
        return _RichTask(bars, task_id)


class _RateTask(_RichTask):
    """Items per second in the task's own unit (points/s, pairs/s), refreshed as work advances."""

    def __init__(self, progress: Any, task_id: Any, unit: str) -> None:
        super().__init__(progress, task_id)
        self._unit = unit

    def advance(self, amount: float = 1) -> None:
        super().advance(amount)
        task = next(t for t in self._progress.tasks if t.id == self._task_id)
        speed = task.speed
        if speed:
            self._progress.update(self._task_id, rate=f"{speed:,.1f} {self._unit}/s")


def rich_progress() -> RichProgress:
    return RichProgress()


# --- datasets (gcl_vectordb.data): `data info`, `data synth` ---------------------------------------------


def _score_range(bounds: tuple[float, float] | None) -> str:
    return "—" if bounds is None else f"{bounds[0]:.4g} – {bounds[1]:.4g}"


def print_dataset_info(info: Any) -> None:
    """The splits and corpora tables of a `gcl_vectordb.data.info.DatasetInfo`, then any rejects."""
    with_rejects = any(s.rejected for s in info.splits)  # the column only where it says something
    print_table(
        f"{info.root} ({info.layout} layout; score columns: min – max)",
        ["split", "corpus", "queries", "pairs", "products", "linear", "reciprocal"]
        + (["rejected"] if with_rejects else []),
        [(s.name, s.corpus, s.queries, s.pairs, s.products, _score_range(s.score_linear),
          _score_range(s.score_reciprocal)) + ((s.rejected,) if with_rejects else ()) for s in info.splits],
        right_align=("corpus", "queries", "pairs", "products", "rejected"),
    )
    print_table(
        None,
        ["corpus", "products", "images found", "images missing", "title only", "rejected"],
        [(c.corpus, c.products, c.images_found, c.images_missing, c.without_image, c.rejected)
         for c in info.corpora],
        right_align=("corpus", "products", "images found", "images missing", "title only", "rejected"),
    )
    if info.missing_splits:
        warn(f"splits not present: {', '.join(info.missing_splits)}")
    if info.rejects:
        counts = ", ".join(f"{reason} {count:,}" for reason, count in sorted(info.rejects.items()))
        warn(f"{sum(info.rejects.values()):,} rows would be skipped ({counts}), e.g.:")
        for example in info.reject_examples:
            error_console.print(f"  {example}", markup=False)


# --- gcl-vdb evaluate -----------------------------------------------------------------------------------

_HEADLINE_COLUMNS = {"ndcg@10": "NDCG@10", "err": "mERR", "rbp@0.7": "mRBP7", "rbp@0.8": "mRBP8",
                     "rbp@0.9": "mRBP9", "map@1000": "MAP@1000", "mrr@1000": "MRR@1000"}


def evaluation_report(report: Any) -> None:
    """The `EvalReport` of `gcl-vdb evaluate`: the headline metrics (rows) per split (columns), the HNSW
    cost under --approx, and the brute-force verdicts. Transposed so that four splits fit 80 columns."""
    s = report.settings
    splits = [r.split for r in report.splits]
    names = list(report.splits[0].headline()) if report.splits else []
    rows = [[_HEADLINE_COLUMNS.get(m, m), *(r.headline()[m] for r in report.splits)] for m in names]
    rows += [["queries", *(r.n_queries for r in report.splits)],
             ["seconds", *(f"{r.timings.total_s:.1f}" for r in report.splits)]]
    print_table(
        f"GCL evaluation of {s.collection}: {s.search} search on {s.vector}, top-{s.k}, seed {s.seed}, "
        f"model {s.model_ref}", ["metric", *splits], rows, right_align=splits,
    )
    approx = [r for r in report.splits if r.exact_metrics is not None]
    if approx:
        deltas = [[_HEADLINE_COLUMNS.get(m, m), *(f"{r.delta()[m]:+.4f}" for r in approx)] for m in names]
        deltas.append(["top-k overlap", *(r.hnsw_overlap for r in approx)])
        print_table("HNSW − exact (negative: ranking quality the index costs)",
                    ["metric", *(r.split for r in approx)], deltas, right_align=[r.split for r in approx])
    for r in report.splits:
        check = r.bruteforce
        if check is None:
            continue
        verdict = "[green]identical[/green]" if check.passed else "[bold red]DIFFERENT[/bold red]"
        console.print(
            f"brute-force check {r.split}: {verdict} — {check.n_queries} queries over {check.n_documents:,} "
            f"vectors; rankings identical up to ties: {'yes' if check.rankings_identical else 'no'}; "
            f"max |Δ score| {check.max_score_difference:.1e}; max |Δ metric| {check.max_metric_difference:.1e}"
        )

# --- gcl-vdb ingest / query ----------------------------------------------------------------------------


def ingest_summary(report: Any) -> None:
    """An `IngestReport`: points per corpus, rejects by reason, where the files are, timings."""
    rows = [(c.corpus, c.written, c.present, c.rejected, c.done, "yes" if c.complete else "no")
            for c in report.corpora]
    rows.append(("all", report.points_written, report.points_present, report.new_rejects,
                 sum(c.done for c in report.corpora), "yes" if all(c.complete for c in report.corpora) else "no"))
    resumed = ", ".join(f"corpus {c} at {n:,}" for c, n in report.resumed_from.items())
    print_table(
        f"ingest into {report.collection} ({report.store}; model {report.model_ref}, dim {report.dim})"
        + (f" — resumed: {resumed}" if resumed else ""),
        ["corpus", "written", "already stored", "rejected", "products done", "complete"], rows,
        right_align=["written", "already stored", "rejected", "products done"],
    )
    seconds = report.seconds
    stages = ", ".join(f"{k} {seconds[k]:.1f}" for k in ("read", "decode", "wait", "encode", "upsert", "checkpoint")
                       if k in seconds)
    rejected = ", ".join(f"{reason} {n:,}" for reason, n in report.rejects.items()) or "none"
    index = (f"built in {seconds.get('index', 0.0):.1f} s" if report.index_built
             else "not built (--no-index): run `gcl-vdb ingest` again without it")
    print_table(None, ["", "value"], [
        ("points in collection", report.points_total),
        ("throughput", f"{report.points_per_s:,.1f} points/s ({report.workers} decode workers)"),
        ("seconds", f"total {seconds.get('total', 0.0):.1f}, pipeline {seconds.get('pipeline', 0.0):.1f}; "
                    f"stages: {stages}"),
        ("rejected (all runs)", rejected),
        ("rejects file", str(report.rejects_file)),
        ("resume state", str(report.state_file)),
        ("index", index),
    ])
    if report.missing_corpora:
        warn(f"the dataset has no corpus {', '.join(map(str, report.missing_corpora))}")


def query_results(result: Any) -> None:
    """A `QueryResult` as a table: rank, score, product id, title, corpus."""
    where = f", corpus {result.corpus}" if result.corpus is not None else ""
    where += "".join(f", {k}={v}" for k, v in result.filters.items())
    print_table(
        f'"{result.query}" in {result.collection} (mode {result.mode}{where}; '
        f"{result.seconds['total'] * 1000:.0f} ms)",
        ["rank", "score", "product id", "title", "corpus"],
        [(hit.rank, hit.score, hit.product_id, hit.title, hit.corpus) for hit in result.hits],
        right_align=["rank", "score", "corpus"],
    )
    if not result.hits:
        info("no results")

# --- gcl-vdb train -------------------------------------------------------------------------------------


def train_summary(result: Any) -> None:
    """The run just trained (a `trainer.recipe.TrainResult`): steps, loss, evaluation before → after."""
    before, after = result.eval_before or {}, result.eval_after or {}
    rows = [
        ["steps", f"{result.steps:,} of {result.total_steps:,}"],
        ["epochs completed", result.epochs_completed],
        ["training pairs", f"{result.data.train_pairs:,} ({result.data.train_queries:,} queries)"],
        ["final loss", result.final_loss],
    ]
    for metric in ("ndcg@10", "err"):
        if metric in after:
            shown = f"{after[metric]:.4f}"
            if metric in before:
                shown = f"{before[metric]:.4f} → {shown}"
            rows.append([f"eval {metric} ({result.data.eval_queries} held-out queries)", shown])
    rows += [
        ["checkpoint", str(result.checkpoint) if result.checkpoint else None],
        ["seconds", f"{result.seconds:.1f}"],
        ["pairs/s", f"{result.pairs_per_second:.1f}"],
    ]
    if result.rejected:
        rows.append(["rejected rows", ", ".join(f"{k} {v:,}" for k, v in sorted(result.rejected.items()))])
    print_table(f"training run {result.run_dir}", ["", "value"], rows)
    if result.interrupted:
        warn(f"stopped at step {result.steps} — the checkpoint is saved; "
             f"continue with the same command and --resume")


# --- gcl-vdb demo ---------------------------------------------------------------------------------------


def demo_stage(stage: Any) -> None:
    """One line as each demo stage ends."""
    mark = "[green]✓[/green]" if stage.status == "ran" else "[dim]↷ skipped (done earlier)[/dim]"
    seconds = f" {stage.seconds:.1f} s" if stage.status == "ran" else ""
    error_console.print(f"{mark} [bold]{stage.name}[/bold]{seconds} — {stage.detail}", soft_wrap=True)


def demo_summary(report: Any) -> None:
    """Stages, the showcase queries' top results, the evaluation per split (side by side with the baseline)."""
    print_table(
        f"gcl-vdb demo in {report.work} — {report.seconds:.0f} s",
        ["stage", "status", "seconds", "what"],
        [(s.name, s.status, f"{s.seconds:.1f}", s.detail) for s in report.stages],
        right_align=["seconds"],
    )
    for loss, results in report.queries.items():
        for result in results:
            print_table(
                f"{loss}: “{result.query}” in {result.collection}",
                ["rank", "score", "title"],
                [(h.rank, f"{h.score:.4f}", h.title) for h in result.hits[:5]],
                right_align=["rank", "score"],
            )
    losses = list(report.evaluations)
    columns = ["split", "metric", *losses] + (["change"] if len(losses) == 2 else [])
    rows = []
    for split in report.evaluations[losses[0]]:
        for metric in ("ndcg@10", "err", "rbp@0.8"):
            values = [report.evaluations[loss][split][metric] for loss in losses]
            row: list[Any] = [split, _HEADLINE_COLUMNS.get(metric, metric), *values]
            if len(values) == 2:  # GCL relative to the CLIP baseline
                row.append(f"{(values[0] - values[1]) / values[1]:+.1%}" if values[1] else "—")
            rows.append(row)
    print_table("ranking quality (GCL protocol, exact search)", columns, rows, right_align=columns[2:])
    info(f"results page with images: {report.html}")
    info(f"try: gcl-vdb query \"red summer dress\" --collection {report.collections.get('gcl', 'gs10m')}")
