"""Encoders: texts and images → L2-normalised vectors in CLIP space, on torch or ONNX Runtime.

The names here import neither torch nor ONNX Runtime. The backends live in their modules:
`gcl_vectordb.encoders.onnx_encoder.OnnxEncoder` (ONNX Runtime) and, with the `train` extra,
`gcl_vectordb.encoders.torch_encoder.TorchEncoder`, `gcl_vectordb.encoders.models.create_clip_model`
and `gcl_vectordb.encoders.checkpoints` (torch). `load_encoder` picks the backend a model reference
needs and imports only that one.
"""

from gcl_vectordb.encoders.fusion import fused_document_vector
from gcl_vectordb.encoders.loader import load_encoder
from gcl_vectordb.encoders.manifest import ExportManifest, Parity, SourceInfo, TokenizerSpec, TowerFiles
from gcl_vectordb.encoders.preprocess import ImagePreprocessor
from gcl_vectordb.encoders.protocol import Encoder, EncoderInfo, l2_normalize
from gcl_vectordb.encoders.refs import ModelSource, known_architectures, resolve_model_ref
from gcl_vectordb.encoders.tokenizer import ClipTokenizer

__all__ = [
    "ClipTokenizer", "Encoder", "EncoderInfo", "ExportManifest", "ImagePreprocessor", "ModelSource", "Parity",
    "SourceInfo", "TokenizerSpec", "TowerFiles", "fused_document_vector", "known_architectures", "l2_normalize",
    "load_encoder", "resolve_model_ref",
]
