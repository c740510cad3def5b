"""`gcl-vdb train` and `python -m trainer train`: CliRunner, JSON output, errors, and a real Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from trainer.checkpointing import RunFolder, load_train_state

MICRO = ["-o", "model.name=gcl-micro", "-o", "optim.warmup_steps=2", "-o", "log_every=1"]


def test_gcl_vdb_train_prints_the_summary_and_writes_the_run(tiny_gs: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_gs), "--out", str(run_dir), "--batch-size", "4",
                                      "--max-steps", "2", "--loss", "clip", *MICRO])
    assert result.exit_code == 0, result.output
    assert "training run" in result.output and "2 of 2" in result.output and "eval ndcg@10" in result.output
    record = RunFolder(run_dir).read_record()
    assert record["config"]["loss"]["kind"] == "clip" and record["config"]["batch_size"] == 4
    assert (run_dir / record["checkpoint"] / "model.safetensors").is_file()

    again = CliRunner().invoke(app, ["train", "--data", str(tiny_gs), "--out", str(run_dir), "--json", "--resume",
                                     "--batch-size", "4", "--max-steps", "3", "--loss", "clip", *MICRO])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["steps"] == 3 and summary["checkpoint"].endswith("step-0000003")


def test_bad_settings_exit_1_with_one_line(tiny_gs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_gs), "--out", str(tmp_path), "-o", "optim.lrr=1"])
    assert result.exit_code == 1
    assert "error: unknown setting optim.lrr — valid keys in optim: lr," in result.output
    usage = CliRunner().invoke(app, ["train", "--loss", "focal"])
    assert usage.exit_code == 2
    help_text = CliRunner().invoke(app, ["train", "--help"])
    assert help_text.exit_code == 0 and "gcl-vdb train --data" in help_text.output


@pytest.mark.slow  # ≈ 10 s: a subprocess imports torch and trains until it is interrupted
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tiny_gs: Path, tmp_path: Path, subprocess_env: dict) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "trainer", "train", "--data", str(tiny_gs), "--out", str(run_dir),
               "--batch-size", "4", "--epochs", "1000", "-o", "eval.holdout_fraction=0", *MICRO]
    process = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any(x["type"] == "train" for x in RunFolder(run_dir).read_metrics()):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "resume" in err
    record = RunFolder(run_dir).read_record()
    assert record["status"] == "interrupted" and record["step"] >= 1
    state = load_train_state(run_dir / record["checkpoint"])
    assert state["state"].step == record["step"] < record["total_steps"]
