"""`gcl-vdb data ...`: the command group for datasets (synth, download, info)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def _register_commands() -> None:
    from gcl_vectordb.cli.data_download import download_command

    app.command("download")(download_command)


_register_commands()
