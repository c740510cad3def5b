"""GCL fine-tuning of open_clip models: the training recipe, its config, losses, batch sampling, DDP.

    from trainer.config import load_config
    from trainer.recipe import run_training
    result = run_training(load_config(Path("train.toml"), overrides=["out=runs/gcl", "data.root=gs"]))

`gcl-vdb train`, `python -m trainer train` and `torchrun -m trainer train` run the same recipe.
`gcl_vectordb` never imports this package; the CLI's `train` command imports it lazily.
Every module here needs torch (the `train` extra): importing the package without it is a clear error.
"""

from gcl_vectordb.extras import require_torch

require_torch("training")
