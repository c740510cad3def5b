"""The optional parts of gcl-vdb and the install extra that brings each (pyproject.toml).

The base install queries, ingests from an ONNX bundle, evaluates, downloads and synthesises data. To
embed it needs one ONNX Runtime build: the `cpu` extra (`onnxruntime`) or the `gpu` extra
(`onnxruntime-gpu`), never both, as they install the same module. Training, export and torch model
references need the `train` extra (torch, torchvision, open_clip, onnx, onnxscript).
The checks look the modules up without importing them (torch takes seconds to import).
"""

from __future__ import annotations

import importlib.util

from gcl_vectordb.errors import ModelError

TRAIN_EXTRA = "install the training extra: pip install 'gcl-vdb[train]'"
RUNTIME_EXTRA = ("install an ONNX Runtime: pip install 'gcl-vdb[cpu]', or 'gcl-vdb[gpu]' on a CUDA machine "
                 "(one of the two, never both)")
TORCH_MODULES = ("torch", "torchvision", "open_clip")


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The top-level modules of `names` that cannot be imported here (not installed, or blocked)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def require_torch(purpose: str) -> None:
    """Raise `ModelError` naming the `train` extra when torch, torchvision or open_clip is missing."""
    missing = missing_modules(TORCH_MODULES)
    if missing:
        raise ModelError(f"{purpose} needs torch and open_clip (not installed: {', '.join(missing)})", TRAIN_EXTRA)


def require_onnxruntime(purpose: str) -> None:
    """Raise `ModelError` naming the `cpu` and `gpu` extras when no ONNX Runtime is installed."""
    if missing_modules(("onnxruntime",)):
        raise ModelError(f"{purpose} needs ONNX Runtime, which is not installed", RUNTIME_EXTRA)
