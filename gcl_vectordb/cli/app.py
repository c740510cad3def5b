"""The `gcl-vdb` Typer application: command groups and the error boundary.

Command modules stay light to import (heavy libraries are imported inside the commands), so that
`gcl-vdb --help` and a cold `gcl-vdb query` start fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from gcl_vectordb import __version__
from gcl_vectordb.cli import render
from gcl_vectordb.errors import GclVdbError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class ErrorBoundaryGroup(TyperGroup):
    """Turns expected errors into one line and exit code 1, and Ctrl-C into a resumable exit 130."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GclVdbError as exc:
            render.error(exc)
            raise typer.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            render.error("interrupted — run the same command again to resume where it stopped")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="gcl-vdb",
    cls=ErrorBoundaryGroup,
    help="Train, export, ingest, query and evaluate ranking-aware multimodal product search (GCL + Qdrant).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        render.info(f"gcl-vdb {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """gcl-vdb: GCL fine-tuning, ONNX export and Qdrant search for product search."""


def _register_commands() -> None:
    # Imported here so that each command module can import `app`-free helpers without cycles.
    # Registered in pipeline order, which is the order `gcl-vdb --help` lists them in.
    from gcl_vectordb.cli import collections as collections_cli
    from gcl_vectordb.cli import data as data_cli
    from gcl_vectordb.cli.demo import demo_command
    from gcl_vectordb.cli.evaluate import evaluate_command
    from gcl_vectordb.cli.export import export_command
    from gcl_vectordb.cli.ingest import ingest_command
    from gcl_vectordb.cli.query import query_command
    from gcl_vectordb.cli.train import train_command

    app.add_typer(data_cli.app, name="data", help="Create, download and inspect Marqo-GS datasets.")
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("ingest")(ingest_command)
    app.command("query")(query_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(
        collections_cli.app, name="collections", help="List, inspect and drop the collections in the store."
    )
    app.command("demo")(demo_command)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()
