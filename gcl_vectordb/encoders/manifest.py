"""The ONNX bundle manifest: everything needed to embed with a bundle folder and nothing else.

    <bundle>/manifest.json                  this record (JSON)
    <bundle>/text.onnx, image.onnx          fp32 towers; variants: text.int8.onnx, image.fp16.onnx, ...
    <bundle>/bpe_simple_vocab_16e6.txt.gz   the tokenizer vocabulary (the bundle is self-contained)

Towers take `tokens` (batch, context) int64 (with `dynamic_text_length`, rows cut after their last end-of-text
token: (batch, length ≤ context)) and `pixels` (batch, 3, S, S) float32 and return
`text_embeds` / `image_embeds` (batch, embed_dim) float32, L2-normalised. Loading checks that every file
exists and has the sha256 recorded here, so a damaged or swapped file is a clear `ModelError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gcl_vectordb.encoders.preprocess import ImagePreprocessor
from gcl_vectordb.encoders.refs import MANIFEST_FILE, read_json_object
from gcl_vectordb.errors import ModelError
from gcl_vectordb.files import write_json_atomic

FORMAT_VERSION = 1
VARIANTS = ("fp32", "int8", "fp16")
TOWERS = ("text", "image")
TEXT_INPUT, IMAGE_INPUT = "tokens", "pixels"
TEXT_OUTPUT, IMAGE_OUTPUT = "text_embeds", "image_embeds"


@dataclass(frozen=True)
class TowerFiles:
    """The two ONNX files of one variant, by name inside the bundle, with their sha256."""

    text: str
    image: str
    text_sha256: str
    image_sha256: str


@dataclass(frozen=True)
class TokenizerSpec:
    name: str  # "clip-bpe": open_clip's SimpleTokenizer semantics
    vocab_file: str
    vocab_sha256: str
    context_length: int


@dataclass(frozen=True)
class Parity:
    """torch vs ONNX Runtime on a fixed batch: max over rows of 1 − cos(torch, ort), and max |Δ|."""

    max_cosine_deviation: float
    max_abs_diff: float
    rows: int


@dataclass(frozen=True)
class SourceInfo:
    model_ref: str  # the model reference the bundle was exported from
    weights_sha256: str  # `weights_sha256(model)` of the exported weights


@dataclass(frozen=True)
class ExportManifest:
    """What an ONNX bundle holds and how to feed it. JSON round trip: `to_dict` / `from_dict`."""

    architecture: str
    model_config: Mapping[str, Any]
    embed_dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str
    fill_color: int
    context_length: int
    tokenizer: TokenizerSpec
    opset: int
    variants: Mapping[str, TowerFiles]
    source: SourceInfo
    parity: Mapping[str, Mapping[str, Parity]] = field(default_factory=dict)  # variant → tower → figures
    created_by: str = ""
    format_version: int = FORMAT_VERSION
    dynamic_text_length: bool = False  # the text tower takes rows cut after the end-of-text token

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.image_size < 1 or self.context_length < 2:
            raise ModelError(f"manifest has bad sizes: embed_dim={self.embed_dim}, image_size={self.image_size}, "
                             f"context_length={self.context_length}")
        unknown = set(self.variants) - set(VARIANTS)
        if not self.variants or unknown:
            raise ModelError(f"manifest variants must be a non-empty subset of {VARIANTS}, got {list(self.variants)}")
        if set(self.parity) - set(self.variants):
            raise ModelError("manifest has parity figures for variants it does not hold")
        if self.tokenizer.context_length != self.context_length:
            raise ModelError("manifest tokenizer and model disagree on the context length")

    def preprocessor(self, draft_factor: float = 2.0) -> ImagePreprocessor:
        return ImagePreprocessor(self.image_size, self.mean, self.std, self.interpolation, self.resize_mode,
                                 self.fill_color, draft_factor)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # plain lists/dicts, as written to disk

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportManifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(f"manifest format version {version!r} is not supported (this gcl-vdb reads {FORMAT_VERSION})",
                             "re-export the bundle with this version of gcl-vdb")
        try:
            return cls(
                **{k: data[k] for k in ("architecture", "model_config", "embed_dim", "image_size", "interpolation",
                                        "resize_mode", "fill_color", "context_length", "opset", "created_by",
                                        "format_version")},
                dynamic_text_length=bool(data.get("dynamic_text_length", False)),  # absent before 0.1.0's end
                mean=tuple(data["mean"]), std=tuple(data["std"]),
                tokenizer=TokenizerSpec(**data["tokenizer"]),
                variants={k: TowerFiles(**v) for k, v in data["variants"].items()},
                source=SourceInfo(**data["source"]),
                parity={v: {t: Parity(**p) for t, p in towers.items()} for v, towers in data.get("parity", {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"manifest.json is incomplete or malformed ({type(exc).__name__}: {exc})",
                             "re-export the bundle with `gcl-vdb export`") from exc

    def write(self, folder: Path) -> Path:
        return write_json_atomic(Path(folder) / MANIFEST_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> ExportManifest:
        """Parse `<folder>/manifest.json` (no file checks; see `verify_bundle`)."""
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise ModelError(f"{folder} is not an ONNX bundle (no {MANIFEST_FILE})", "export one with `gcl-vdb export`")
        return cls.from_dict(read_json_object(path))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_bundle(
    folder: Path, manifest: ExportManifest, variant: str, towers: tuple[str, ...] = ("text", "image")
) -> TowerFiles:
    """Check that `variant`'s `towers` and the vocabulary exist and match their recorded sha256."""
    if variant not in manifest.variants:
        raise ModelError(f"bundle {folder} has no {variant!r} variant (it has {', '.join(manifest.variants)})",
                         f"re-export with the variant (e.g. `gcl-vdb export ... --{variant}`) or pick another")
    files = manifest.variants[variant]
    expected = [(files.text, files.text_sha256)] if "text" in towers else []
    expected += [(files.image, files.image_sha256)] if "image" in towers else []
    expected.append((manifest.tokenizer.vocab_file, manifest.tokenizer.vocab_sha256))
    for name, sha in expected:
        path = Path(folder) / name
        if Path(name).name != name:
            raise ModelError(f"manifest names a file outside the bundle: {name!r}")
        if not path.is_file():
            raise ModelError(f"bundle {folder} is missing {name}", "the bundle is incomplete; re-export it")
        if file_sha256(path) != sha:
            raise ModelError(f"{path} does not match its sha256 in manifest.json (damaged or replaced)",
                             "re-export the bundle with `gcl-vdb export`")
    return files
