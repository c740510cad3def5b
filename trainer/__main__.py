"""`python -m trainer train ...` — the `gcl-vdb train` command; also the torchrun entry point:

    torchrun --nproc_per_node=2 -m trainer train --data DIR --out RUN_DIR
"""

import typer

from gcl_vectordb.cli.app import ErrorBoundaryGroup
from gcl_vectordb.cli.train import train_command

app = typer.Typer(
    name="python -m trainer", cls=ErrorBoundaryGroup, no_args_is_help=True, pretty_exceptions_enable=False,
    add_completion=False, rich_markup_mode="rich", help="GCL fine-tuning (the same command as `gcl-vdb train`).",
)


@app.callback()
def _root() -> None:
    """GCL fine-tuning of open_clip models."""


app.command("train")(train_command)

if __name__ == "__main__":
    app()
