"""`python -m trainer train ...` — the `gcl-vdb train` command; also the torchrun entry point:

    torchrun --nproc_per_node=2 -m trainer train --data DIR --out RUN_DIR
"""

from gcl_vectordb.cli.app import app

if __name__ == "__main__":
    app(prog_name="python -m trainer")
