"""The run folder: checkpoints, the training state, the metrics log and the run record.

    RUN_DIR/run.json                      run record: config, data, epochs, versions, "checkpoint" pointer
    RUN_DIR/metrics.jsonl                 one JSON object per logged step / evaluation
    RUN_DIR/checkpoints/step-0000100/     model.safetensors + model.json (save_checkpoint_folder)
                                          + train_state.pt (TrainState, optimizer, scheduler, RNG states)

A checkpoint folder is complete before `run.json` points at it (the pointer moves by an atomic file
replace), so `load_encoder(RUN_DIR)` and `gcl-vdb export --checkpoint RUN_DIR` always find whole weights.
`train_state.pt` holds only tensors and plain Python values: it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gcl_vectordb.encoders.refs import CHECKPOINT_CONFIG, RUN_FILE
from gcl_vectordb.errors import ConfigError, ModelError
from gcl_vectordb.files import atomic_output, write_json_atomic, write_text_atomic

TRAIN_STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
STATE_FORMAT = 1


@dataclass
class TrainState:
    """Where training stands: `step` optimizer steps done; in epoch `epoch`, `batch_in_epoch` of this
    rank's micro-batches already trained (the next one starts there); pairs trained (all ranks); the
    running loss sum of the epoch (for its mean in the run record)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    pairs_seen: int = 0
    train_seconds: float = 0.0
    epoch_loss_sum: float = 0.0
    epoch_loss_steps: int = 0


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU, CUDA), numpy and Python RNG states as tensors and plain values (weights_only-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value


def save_train_state(folder: Path, state: TrainState, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, world_size: int) -> Path:
    """Write `train_state.pt` into a checkpoint folder (atomically)."""
    document = {
        "format": STATE_FORMAT, "state": asdict(state), "world_size": world_size,
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": capture_rng_state(),
    }
    path = folder / TRAIN_STATE_FILE
    with atomic_output(path, "wb") as handle:
        torch.save(document, handle)
    return path


def load_train_state(folder: Path) -> dict[str, Any]:
    """The document `save_train_state` wrote, loaded with weights_only=True; "state" as a `TrainState`."""
    path = folder / TRAIN_STATE_FILE
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{folder} has no {TRAIN_STATE_FILE}, so training cannot resume from it",
                          "resume from a checkpoint written by gcl-vdb train, or start a new run") from None
    except Exception as exc:  # unpickling refusals and truncated files alike: the file is not usable
        raise ModelError(f"cannot load {path}: {type(exc).__name__}: {str(exc)[:300]}",
                         "the checkpoint is damaged; resume from an earlier one or start again") from exc
    if document.get("format") != STATE_FORMAT:
        raise ModelError(f"{path} has an unknown format {document.get('format')!r}")
    document["state"] = TrainState(**document["state"])
    return document


class RunFolder:
    """The files of one run folder; only the main rank writes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def record_path(self) -> Path:
        return self.root / RUN_FILE

    def read_record(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            return {}
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {self.record_path}: {exc}", "the run folder is damaged") from None

    def write_record(self, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.record_path, record)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint folder run.json points at, or None when there is none yet."""
        pointer = self.read_record().get("checkpoint")
        if not pointer:
            return None
        folder = self.root / pointer
        return folder if (folder / CHECKPOINT_CONFIG).is_file() else None

    def checkpoint_folder(self, step: int) -> Path:
        return self.root / CHECKPOINTS_DIR / f"step-{step:07d}"

    def append_metrics(self, line: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / METRICS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.root / METRICS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric lines of steps after `after_step` (written after the checkpoint a run resumes from)."""
        kept = [line for line in self.read_metrics() if line.get("step", 0) <= after_step]
        path = self.root / METRICS_FILE
        if path.is_file():
            write_text_atomic(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in kept))

    def prune_checkpoints(self, keep: int, current: Path) -> None:
        """Delete all but the `keep` newest checkpoint folders (never `current`); keep = 0 keeps all."""
        if keep <= 0:
            return
        folders = sorted(p for p in (self.root / CHECKPOINTS_DIR).glob("step-*") if p.is_dir())
        for folder in folders[:-keep]:
            if folder.resolve() != current.resolve():
                shutil.rmtree(folder, ignore_errors=True)
