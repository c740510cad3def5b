"""The CLI's few shared output helpers: a table, JSON, one-line messages and progress bars.

Each command prints its own results with these (tables for people on stdout, `--json` for machines on
stdout, remarks and progress on stderr); the library itself never prints, it logs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from gcl_vectordb.errors import GclVdbError

console = Console(highlight=False, soft_wrap=False)
error_console = Console(stderr=True, highlight=False)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths, enums and numpy scalars/arrays as plain JSON values (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
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
    error_console.print(f"[yellow]warning:[/yellow] {escape(message)}")


def confirm(question: str) -> bool:
    """Ask a yes/no question on stderr; anything but yes (or no terminal input) means no."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False


def error(exc: GclVdbError | str) -> None:
    """One line on stderr: what went wrong — what to do."""
    error_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True, soft_wrap=True)


# --- progress bars (a `gcl_vectordb.progress.Progress` drawn on stderr) -----------------------------------


class _BarTask:
    """One bar; items other than bytes also show their rate in the task's own unit (points/s, pairs/s)."""

    def __init__(self, bars: Progress, task_id: TaskID, unit: str) -> None:
        self._bars, self._task_id, self._unit = bars, task_id, unit

    def advance(self, amount: float = 1) -> None:
        self._bars.advance(self._task_id, amount)
        if self._unit == "B":
            return
        speed = self._bars.tasks[self._bars.task_ids.index(self._task_id)].speed
        if speed:
            self._bars.update(self._task_id, rate=f"{speed:,.1f} {self._unit}/s")

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        self._bars.update(self._task_id, completed=completed, total=total)

    def close(self) -> None:
        self._bars.stop_task(self._task_id)


class ProgressBars:
    """Bars with count, rate and ETA; byte transfers get their own group (size and speed)."""

    def __init__(self) -> None:
        self._bytes = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=error_console, transient=False,
        )
        self._items = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=error_console, transient=False,
        )

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bars in (self._bytes, self._items):
            if bars.live.is_started:
                bars.stop()

    def task(self, description: str, total: float | None = None, unit: str = "it") -> _BarTask:
        bars = self._bytes if unit == "B" else self._items
        if not bars.live.is_started:
            bars.start()
        task_id = bars.add_task(description, total=total, **({} if unit == "B" else {"rate": ""}))
        return _BarTask(bars, task_id, unit)
