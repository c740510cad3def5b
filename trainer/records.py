"""Typed records of a training run: one optimizer step, the result of a run, and run-record helpers."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import open_clip
import torch

import gcl_vectordb
from trainer.pairs import DataSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepMetrics:
    """One optimizer step: loss (Σ λ·term) and each term's loss, the lr it used, t after the step,
    the gradient norm before clipping (None when clipping is off), pairs over all ranks."""

    step: int
    epoch: int
    loss: float
    terms: dict[str, float]
    lr: float
    logit_scale: float
    grad_norm: float | None
    pairs: int


@dataclass(frozen=True)
class TrainResult:
    """What a run did. final_loss: mean of the last ≤ 10 steps' losses. Evaluations: headline metric means
    (ndcg@10, err, ...) and ndcg at every cutoff, None when not run. pairs_per_second: this session's
    training pairs (all ranks) per second of training steps (evaluation and checkpoints excluded)."""

    run_dir: Path
    checkpoint: Path | None
    steps: int
    total_steps: int
    epochs_completed: int
    final_loss: float | None
    eval_before: dict[str, float] | None
    eval_after: dict[str, float] | None
    seconds: float
    pairs_per_second: float
    interrupted: bool
    is_main: bool
    data: DataSummary
    rejected: dict[str, int]


def versions() -> dict[str, str]:
    return {"gcl-vdb": gcl_vectordb.__version__, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "python": platform.python_version()}


def warn_on_changed_data_order(saved: dict, current: dict) -> None:
    """A resumed run continues at a batch index: settings that change the batches make that another run."""
    keys = [("seed",), ("batch_size",), ("data",), ("optim", "accumulation"), ("eval", "holdout_fraction")]
    changed = []
    for key in keys:
        before, now = saved, current
        for part in key:
            before, now = (before or {}).get(part), (now or {}).get(part)
        if before is not None and before != now:
            changed.append(".".join(key))
    if changed:
        log.warning("resuming with changed %s: the batches differ from the interrupted run's", ", ".join(changed))


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
