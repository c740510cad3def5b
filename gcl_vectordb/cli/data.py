"""`gcl-vdb data ...`: the command group for datasets (synth, download, info)."""

from __future__ import annotations

import typer

from gcl_vectordb.cli import data_download, data_info, data_synth

app = typer.Typer(no_args_is_help=True)
app.command("synth")(data_synth.synth)
app.command("download")(data_download.download_command)
app.command("info")(data_info.info)
