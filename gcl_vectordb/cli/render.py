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


def warn(message: str) -> None:
    error_console.print(f"[yellow]warning:[/yellow] {message}")


def error(exc: GclVdbError | str) -> None:
    """One line on stderr: what went wrong — what to do."""
    error_console.print(f"[bold red]error:[/bold red] {exc}", markup=True, soft_wrap=True)
