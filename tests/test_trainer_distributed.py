"""torchrun with 2 CPU processes on gloo = one process on the doubled batch (the same recipe code path).

Each rank trains on its half of every global batch; features are gathered across ranks (global
negatives) and DDP averages the gradients, so the losses and the weights after each step must equal
those of one process whose batch is both halves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.checkpointing import RunFolder
from trainer.config import load_config
from trainer.recipe import run_training

SETTINGS = ["model.name=gcl-micro", "max_steps=2", "log_every=1", "eval.holdout_fraction=0", "optim.warmup_steps=2"]


@pytest.mark.slow  # 10–25 s: two torchrun workers import torch and build the model
def test_two_gloo_processes_equal_one_process_on_the_doubled_batch(
    tiny_gs: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    overrides = [arg for setting in SETTINGS for arg in ("-o", setting)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "trainer", "train", "--data", str(tiny_gs), "--out", str(tmp_path / "ddp"),
               "--batch-size", "2", *overrides]
    done = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training run") == 1  # only rank 0 reports

    single = run_training(load_config(updates={"out": tmp_path / "single", "data.root": tiny_gs, "batch_size": 4},
                                      overrides=SETTINGS))
    ddp_lines = [x for x in RunFolder(tmp_path / "ddp").read_metrics() if x["type"] == "train"]
    one_lines = [x for x in RunFolder(tmp_path / "single").read_metrics() if x["type"] == "train"]
    assert [x["pairs"] for x in ddp_lines] == [x["pairs"] for x in one_lines] == [4, 4]
    assert [x["loss"] for x in ddp_lines] == pytest.approx([x["loss"] for x in one_lines], abs=1e-5)
    assert [x["grad_norm"] for x in ddp_lines] == pytest.approx([x["grad_norm"] for x in one_lines], rel=1e-4)
    ddp_weights = load_file(str(tmp_path / "ddp" / "checkpoints" / "step-0000002" / "model.safetensors"))
    one_weights = load_file(str(single.checkpoint / "model.safetensors"))
    for name, tensor in one_weights.items():
        torch.testing.assert_close(ddp_weights[name], tensor, atol=1e-5, rtol=1e-4)
    record = RunFolder(tmp_path / "ddp").read_record()
    assert record["world_size"] == 2 and record["status"] == "completed"
