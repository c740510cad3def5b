"""Checkpoint folders: the one format the trainer writes (here) and every model loader reads
(`gcl_vectordb.encoders.models.load_checkpoint_folder`).

    <folder>/model.safetensors   open_clip model state dict
    <folder>/model.json          {"architecture": "gcl-tiny", "model_config": {...}, "preprocess_cfg": {...},
                                  "source": "<model ref it started from>", "step": N, ...extra metadata}

A training run folder holds `run.json` with `"checkpoint": "<path of its latest checkpoint folder,
relative to the run folder>"`; `resolve_model_ref` follows that pointer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save

from gcl_vectordb.encoders.models import register_package_configs
from gcl_vectordb.encoders.refs import CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS
from gcl_vectordb.errors import ModelError
from gcl_vectordb.files import write_bytes_atomic, write_text_atomic


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DistributedDataParallel (`.module`) or torch.compile (`._orig_mod`)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def save_checkpoint_folder(
    model: torch.nn.Module,
    architecture: str,
    folder: str | Path,
    *,
    model_config: dict[str, Any] | None = None,
    source: str | None = None,
    step: int = 0,
    **meta: Any,
) -> Path:
    """Write `model.safetensors` + `model.json` into `folder` (files replaced atomically); returns the folder.

    `model_config` defaults to open_clip's config of `architecture`; `meta` must be JSON-serialisable.
    Example: `save_checkpoint_folder(model, "gcl-tiny", run / "checkpoints" / "step-000200", step=200)`.
    """
    register_package_configs()
    model = _unwrap(model)
    config = model_config if model_config is not None else open_clip.get_model_config(architecture)
    if config is None:
        raise ModelError(f"no model config for architecture {architecture!r}", "pass model_config=...")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta_doc = {
        "architecture": architecture, "model_config": config,
        "preprocess_cfg": dict(open_clip.get_model_preprocess_cfg(model)),
        "source": source or architecture, "step": int(step), **meta,
    }
    text = json.dumps(meta_doc, indent=2, default=_json_default)
    write_bytes_atomic(folder / CHECKPOINT_WEIGHTS, save(state))
    write_text_atomic(folder / CHECKPOINT_CONFIG, text)
    return folder


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
