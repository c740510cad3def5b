"""Model references: one string names a model, is stored in collection records, and resolves the same
way in any process. Resolution only looks at the string and the file system (no torch import).

Forms, tried in this order:
  `hf-hub:org/repo`                     open_clip model on the Hugging Face Hub (network)
  `/path/to/bundle`                     ONNX bundle folder (has manifest.json)
  `/path/to/checkpoint`                 trainer checkpoint folder (model.json + model.safetensors)
  `/path/to/run`                        training run folder (run.json → its latest checkpoint folder)
  `ARCH:/path/weights.safetensors`      architecture + local weights (.safetensors, .pt, .pth, .bin)
  `ARCH:TAG`                            architecture + open_clip pretrained tag (network)
  `ARCH`                                registered architecture, seeded random init (tests, demo)
Path forms are made absolute; a run folder resolves to the checkpoint folder it points to now, so a
collection pins the exact weights it was built with.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from gcl_vectordb.errors import ModelError

ModelKind = Literal["bundle", "checkpoint", "file", "tag", "hf-hub", "arch"]
HF_HUB_PREFIX = "hf-hub:"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
MANIFEST_FILE = "manifest.json"
CHECKPOINT_CONFIG = "model.json"
CHECKPOINT_WEIGHTS = "model.safetensors"
RUN_FILE = "run.json"
PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
REF_FORMS = "an ONNX bundle folder, a checkpoint or run folder, ARCH, ARCH:TAG, ARCH:/path/weights.safetensors or hf-hub:org/repo"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model reference. `ref` is the canonical string to store and pass to another process."""

    kind: ModelKind
    ref: str
    architecture: str | None = None  # None for hf-hub and bundles (read from their configs)
    path: Path | None = None  # bundle folder, checkpoint folder or weights file
    tag: str | None = None  # open_clip pretrained tag, or the hub id for hf-hub


@lru_cache
def known_architectures() -> frozenset[str]:
    """Architecture names from open_clip's and this package's config folders, found without importing torch."""
    folders = [PACKAGE_CONFIG_DIR]
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "model_configs")
    return frozenset(p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.json"))


def package_architectures() -> tuple[str, ...]:
    """The tiny architectures shipped with gcl-vdb (`gcl-tiny`, `gcl-micro`)."""
    return tuple(sorted(p.stem for p in PACKAGE_CONFIG_DIR.glob("*.json")))


def resolve_model_ref(ref: str | Path) -> ModelSource:
    """Parse a model reference (see the module docstring) into a `ModelSource`; `ModelError` if it names nothing."""
    text = str(ref).strip()
    if not text:
        raise ModelError("empty model reference", f"pass {REF_FORMS}")
    if text.startswith(HF_HUB_PREFIX):
        hub_id = text[len(HF_HUB_PREFIX) :]
        if hub_id.count("/") != 1 or not all(hub_id.split("/")):
            raise ModelError(f"bad hf-hub id {text!r}", "write it as hf-hub:org/repo")
        return ModelSource("hf-hub", text, tag=hub_id)
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(path.resolve())
    arch, sep, rest = text.partition(":")
    if sep:
        _check_architecture(arch, text)
        if _looks_like_path(rest):
            weights = Path(rest).expanduser().resolve()
            if not weights.is_file():
                raise ModelError(f"weights file not found: {weights}", "check the path after 'ARCH:'")
            return ModelSource("file", f"{arch}:{weights}", architecture=arch, path=weights)
        if not rest:
            raise ModelError(f"no pretrained tag after {arch!r} in {text!r}", f"pass {REF_FORMS}")
        return ModelSource("tag", f"{arch}:{rest}", architecture=arch, tag=rest)
    if text in known_architectures():
        return ModelSource("arch", text, architecture=text)
    if "/" in text or text.startswith("."):
        raise ModelError(f"no such model folder: {path}", "export a bundle with `gcl-vdb export` or fix the path")
    raise ModelError(f"unknown model reference {text!r}", f"pass {REF_FORMS}")


def _looks_like_path(rest: str) -> bool:
    return "/" in rest or rest.startswith((".", "~")) or rest.lower().endswith(WEIGHT_SUFFIXES)


def _check_architecture(arch: str, text: str) -> None:
    if arch not in known_architectures():
        raise ModelError(f"unknown architecture {arch!r} in model reference {text!r}",
                         f"use a registered open_clip architecture (e.g. ViT-B-32) or one of {package_architectures()}")


def _resolve_path(path: Path) -> ModelSource:
    if path.is_file():
        raise ModelError(f"{path} is a weights file without an architecture",
                         f"pass it as ARCH:{path} (e.g. gcl-tiny:{path})")
    if (path / MANIFEST_FILE).is_file():
        return ModelSource("bundle", str(path), path=path)
    if (path / CHECKPOINT_CONFIG).is_file():
        return ModelSource("checkpoint", str(path), architecture=read_checkpoint_meta(path)["architecture"], path=path)
    if (path / RUN_FILE).is_file():
        return _resolve_path(_run_checkpoint(path))
    raise ModelError(f"{path} is not a model folder (no {MANIFEST_FILE}, {CHECKPOINT_CONFIG} or {RUN_FILE})",
                     "point at an exported bundle, a checkpoint folder or a training run folder")


def read_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "the file is damaged; re-create it") from exc
    if not isinstance(value, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return value


def read_checkpoint_meta(folder: Path) -> dict:
    """The `model.json` of a checkpoint folder (architecture, model_config, source, step, ...), validated."""
    meta = read_json_object(Path(folder) / CHECKPOINT_CONFIG)
    if not isinstance(meta.get("architecture"), str) or not isinstance(meta.get("model_config"), dict):
        raise ModelError(f"{Path(folder) / CHECKPOINT_CONFIG} lacks 'architecture' or 'model_config'",
                         "checkpoint folders are written by gcl-vdb train (save_checkpoint_folder)")
    return meta


def _run_checkpoint(run: Path) -> Path:
    pointer = read_json_object(run / RUN_FILE).get("checkpoint")
    if not isinstance(pointer, str) or not pointer:
        raise ModelError(f"{run / RUN_FILE} names no checkpoint yet", "train until a checkpoint is saved")
    folder = (run / pointer).resolve()
    if not (folder / CHECKPOINT_CONFIG).is_file():
        raise ModelError(f"{run / RUN_FILE} points at {folder}, which is not a checkpoint folder",
                         "the run folder is incomplete; re-run training or pass a checkpoint folder")
    return folder
