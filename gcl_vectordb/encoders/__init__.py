"""Encoders: texts and images → L2-normalised vectors in CLIP space, on torch or ONNX Runtime.

Light to import: the torch-backed names (`TorchEncoder`, `create_clip_model`, checkpoint helpers) are
loaded on first use, so the ONNX path (`OnnxEncoder`, `load_encoder` of a bundle) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from gcl_vectordb.encoders.fusion import DEFAULT_FIELD_WEIGHTS, FIELDS, fused_document_vector
from gcl_vectordb.encoders.loader import load_encoder
from gcl_vectordb.encoders.manifest import ExportManifest, Parity, SourceInfo, TokenizerSpec, TowerFiles
from gcl_vectordb.encoders.preprocess import ImagePreprocessor
from gcl_vectordb.encoders.protocol import Encoder, EncoderInfo, l2_normalize
from gcl_vectordb.encoders.refs import ModelSource, known_architectures, resolve_model_ref
from gcl_vectordb.encoders.tokenizer import ClipTokenizer

_LAZY = {
    "OnnxEncoder": "gcl_vectordb.encoders.onnx_encoder",
    "TorchEncoder": "gcl_vectordb.encoders.torch_encoder",
    "LoadedClip": "gcl_vectordb.encoders.models",
    "create_clip_model": "gcl_vectordb.encoders.models",
    "register_package_configs": "gcl_vectordb.encoders.models",
    "weights_sha256": "gcl_vectordb.encoders.models",
    "save_checkpoint_folder": "gcl_vectordb.encoders.checkpoints",
    "load_checkpoint_folder": "gcl_vectordb.encoders.checkpoints",
}

__all__ = [
    "DEFAULT_FIELD_WEIGHTS", "FIELDS", "ClipTokenizer", "Encoder", "EncoderInfo", "ExportManifest",
    "ImagePreprocessor", "ModelSource", "Parity", "SourceInfo", "TokenizerSpec", "TowerFiles",
    "fused_document_vector", "known_architectures", "l2_normalize", "load_encoder", "resolve_model_ref", *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
