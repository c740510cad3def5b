"""The `gcl-vdb` Typer application: the command table and the error boundary.

Each command lives in its own module with its options and its output. A command's module is imported
only when that command runs: a cold `gcl-vdb query` must not pay for pandas, qdrant-client or torch
(tests/test_query.py measures what it imports), so the modules may import the library at their top.
"""

from __future__ import annotations

import importlib
from difflib import get_close_matches
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from gcl_vectordb import __version__
from gcl_vectordb.cli import output
from gcl_vectordb.errors import GclVdbError
from gcl_vectordb.files import out_of_space

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130

COMMANDS: dict[str, str] = {  # name → module with a Typer `app`; pipeline order is `--help` order
    "data": "gcl_vectordb.cli.data",
    "train": "gcl_vectordb.cli.train",
    "export": "gcl_vectordb.cli.export",
    "embed": "gcl_vectordb.cli.embed",
    "ingest": "gcl_vectordb.cli.ingest",
    "query": "gcl_vectordb.cli.query",
    "evaluate": "gcl_vectordb.cli.evaluate",
    "serve": "gcl_vectordb.cli.serve",
    "collections": "gcl_vectordb.cli.collections",
    "demo": "gcl_vectordb.cli.demo",
}


class Commands(TyperGroup):
    """Loads commands from `COMMANDS` on demand; turns expected errors (and a full disk) into one line and
    exit code 1, and Ctrl-C into a resumable exit 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = typer.main.get_command(importlib.import_module(module).app)
        command.name = cmd_name
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            matches = get_close_matches(args[0], list(COMMANDS))
            hint = f" Did you mean {', '.join(map(repr, matches))}?" if matches else ""
            ctx.fail(f"No such command {args[0]!r}.{hint}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GclVdbError as exc:
            output.error(exc)
            raise typer.Exit(EXIT_FAILURE) from None
        except OSError as exc:  # a full disk met by a write outside the store's own checks
            target = Path(exc.filename or ".")
            full = out_of_space(exc, target, f"write {exc.filename}" if exc.filename else "write a file")
            if full is None:
                raise
            output.error(full)
            raise typer.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            output.error("interrupted — run the same command again to resume where it stopped")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="gcl-vdb",
    cls=Commands,
    help="Train, export, ingest, query and evaluate ranking-aware multimodal product search (GCL + Qdrant).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def command_app(**settings: object) -> typer.Typer:
    """The Typer app of one command module, with the root's settings (the root adds no completion)."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich", **settings)


def _version_callback(value: bool) -> None:
    if value:
        output.info(f"gcl-vdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """gcl-vdb: GCL fine-tuning, ONNX export and Qdrant search for product search."""


def main() -> None:
    """Console-script entry point."""
    app()
