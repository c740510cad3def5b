"""open_clip models from a model reference: architecture + weights, with the preprocessing they expect.

This module imports torch and open_clip; the ONNX path (`onnx_encoder`) never imports it.
Random-init architectures are seeded from their name inside `torch.random.fork_rng`, so the same name
gives bit-identical weights in every process and the caller's global RNG state is left untouched.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transform import PreprocessCfg
from open_clip.transformer import text_global_pool
from safetensors import SafetensorError
from safetensors.torch import load_file

from gcl_vectordb.encoders.preprocess import OPENAI_MEAN, OPENAI_STD, ImagePreprocessor
from gcl_vectordb.encoders.refs import (
    CHECKPOINT_WEIGHTS,
    PACKAGE_CONFIG_DIR,
    ModelSource,
    read_checkpoint_meta,
    resolve_model_ref,
)
from gcl_vectordb.errors import ModelError

log = logging.getLogger(__name__)
_registered = False


def register_package_configs() -> None:
    """Make the shipped tiny architectures (`gcl-tiny`, `gcl-micro`) known to open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(PACKAGE_CONFIG_DIR)
        _registered = True


@dataclass
class LoadedClip:
    """An open_clip model (eval mode, CPU) with what is needed to feed it and to describe it."""

    model: torch.nn.Module
    source: ModelSource
    architecture: str
    model_config: dict[str, Any]
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        return int(self.model_config["embed_dim"])

    @property
    def context_length(self) -> int:
        return int(self.model_config["text_cfg"].get("context_length", 77))

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.get("size", self.model_config["vision_cfg"].get("image_size", 224))
        if isinstance(size, (list, tuple)):
            if len(set(size)) != 1:
                raise ModelError(f"non-square image size {tuple(size)} is not supported")
            size = size[0]
        return int(size)

    def preprocessor(self, draft_factor: float = 2.0) -> ImagePreprocessor:
        cfg = self.preprocess_cfg
        return ImagePreprocessor(
            size=self.image_size, mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
            interpolation=cfg.get("interpolation", "bicubic"), resize_mode=cfg.get("resize_mode", "shortest"),
            fill_color=int(cfg.get("fill_color", 0)), draft_factor=draft_factor,
        )


class _DropRootWarnings(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


@contextmanager
def quiet_root_warnings(*fragments: str) -> Iterator[None]:
    """Drop root-logger records containing `fragments` (open_clip and onnxruntime log expected,
    alarming-looking warnings such as "Model initialized randomly" through the root logger)."""
    root = logging.getLogger()
    dropper = _DropRootWarnings(fragments)
    root.addFilter(dropper)
    try:
        yield
    finally:
        root.removeFilter(dropper)


def architecture_seed(architecture: str) -> int:
    """The init seed of a random-weights architecture: the first 4 bytes of sha256(name)."""
    return int.from_bytes(hashlib.sha256(architecture.encode("utf-8")).digest()[:4], "big")


def create_clip_model(model_ref: str | ModelSource) -> LoadedClip:
    """Build the model a reference names (see `resolve_model_ref`); eval mode, on the CPU.

    Example: `create_clip_model("gcl-tiny")`, `create_clip_model("ViT-B-32:/w/vitb32.safetensors")`.
    """
    source = model_ref if isinstance(model_ref, ModelSource) else resolve_model_ref(model_ref)
    register_package_configs()
    if source.kind == "bundle":
        raise ModelError(f"{source.ref} is an ONNX bundle and holds no torch weights",
                         "use the ONNX backend, or pass the checkpoint the bundle was exported from")
    if source.kind == "checkpoint":
        return load_checkpoint_folder(source.path)
    if source.kind == "hf-hub":
        return _from_hub(source)
    arch = source.architecture
    config = open_clip.get_model_config(arch)
    if config is None:
        raise ModelError(f"open_clip has no architecture {arch!r}")
    if source.kind == "tag":
        model = _from_tag(source)
    else:
        model = _seeded(lambda: open_clip.create_model(arch, pretrained=None), arch)
        if source.kind == "file":
            _load_weights(model, source.path)
    return _loaded(model, source, arch, config)


def _loaded(model: torch.nn.Module, source: ModelSource, arch: str, config: dict) -> LoadedClip:
    require_clip_tokenizer(config, source.ref)
    model.eval()
    log.info("model %s (%s): %s", source.ref, source.kind, arch)
    return LoadedClip(model, source, arch, config, dict(open_clip.get_model_preprocess_cfg(model)))


def _seeded(build, architecture: str) -> torch.nn.Module:
    with torch.random.fork_rng(), quiet_root_warnings("initialized randomly"):
        torch.manual_seed(architecture_seed(architecture))
        return build()


def _fetch_failed(what: str, arch: str, exc: BaseException) -> ModelError:
    return ModelError(
        f"weights for {what} could not be fetched (offline? no network access?): {type(exc).__name__}: {exc}",
        f"download the weights on a machine with network access and pass the file: "
        f"{arch}:/path/to/weights.safetensors",
    )


def _from_tag(source: ModelSource) -> torch.nn.Module:
    arch, tag = source.architecture, source.tag
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise ModelError(f"{arch!r} has no pretrained tag {tag!r} (and it is not a weights file path)",
                         f"known tags: {', '.join(tags) or 'none'}; or pass {arch}:/path/to/weights.safetensors")
    try:
        open_clip.pretrained.download_pretrained(open_clip.get_pretrained_cfg(arch, tag))
    except Exception as exc:  # any download failure (DNS, HTTP, HF offline mode) means the same to a user
        raise _fetch_failed(source.ref, arch, exc) from exc
    return _seeded(lambda: open_clip.create_model(arch, pretrained=tag), arch)


def _from_hub(source: ModelSource) -> LoadedClip:
    try:
        config = open_clip.get_model_config(source.ref)
        model = open_clip.create_model(source.ref)
    except Exception as exc:  # hub download failures surface as various exception types
        raise _fetch_failed(source.ref, "ARCH", exc) from exc
    return _loaded(model, source, source.ref, config)


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a state dict file into `model` (safetensors, or torch.load with weights_only=True); strict keys."""
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:  # unpickling refusals, shape/key mismatches, truncated files
        raise ModelError(f"cannot load weights from {path}: {type(exc).__name__}: {str(exc)[:300]}",
                         "check the file belongs to this architecture (.pt files must hold a plain state dict)"
                         ) from exc


def require_clip_tokenizer(config: dict, ref: str) -> None:
    if config.get("text_cfg", {}).get("hf_tokenizer_name"):
        raise ModelError(f"{ref} uses a Hugging Face tokenizer; gcl-vdb supports CLIP-BPE text towers only",
                         "pick an open_clip architecture with the CLIP tokenizer (ViT-B-32, ViT-L-14, ...)")


def instantiate_from_config(model_config: dict[str, Any]) -> torch.nn.Module:
    """A randomly initialised open_clip CLIP (or CustomTextCLIP) from a model config dict."""
    cfg = copy.deepcopy(model_config)
    cfg.pop("preprocess_cfg", None)
    if "multimodal_cfg" in cfg:
        raise ModelError("CoCa models (multimodal_cfg) are not supported")
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    try:
        return (CustomTextCLIP if custom_text else CLIP)(**cfg)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"invalid open_clip model config: {exc}") from exc


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names, dtypes, shapes, bytes in name order): identifies the weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint_folder(folder: str | Path) -> LoadedClip:
    """Rebuild the model saved by `gcl_vectordb.encoders.checkpoints.save_checkpoint_folder` (eval mode, CPU)."""
    folder = Path(folder).resolve()
    meta = read_checkpoint_meta(folder)
    weights = folder / CHECKPOINT_WEIGHTS
    if not weights.is_file():
        raise ModelError(f"checkpoint folder {folder} has no {CHECKPOINT_WEIGHTS}", "the checkpoint is incomplete")
    config = meta["model_config"]
    require_clip_tokenizer(config, str(folder))
    model = instantiate_from_config(config)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelError(f"cannot load {weights}: {str(exc)[:300]}",
                         "the checkpoint is damaged or does not match its model.json") from exc
    preprocess = meta.get("preprocess_cfg") or {}
    preprocess.setdefault("size", config["vision_cfg"].get("image_size", 224))
    open_clip.model.set_model_preprocess_cfg(model, _complete_preprocess(preprocess))
    model.eval()
    source = ModelSource("checkpoint", str(folder), architecture=meta["architecture"], path=folder)
    return LoadedClip(model, source, meta["architecture"], config, dict(open_clip.get_model_preprocess_cfg(model)))


def _complete_preprocess(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**asdict(PreprocessCfg()), **cfg}


def takes_cut_text(model: torch.nn.Module) -> bool:
    """True when the text tower gives the same features for token rows cut after their last end-of-text
    token: open_clip's `CLIP` text transformer with a causal mask, pooled at the end-of-text token. With a
    causal mask no position attends to the padding after it, so cutting it changes nothing but the cost
    (77 → ~20 positions for product titles, ~5 for queries)."""
    mask = getattr(model, "attn_mask", None)
    if not isinstance(model, CLIP) or not isinstance(mask, torch.Tensor) or model.text_pool_type != "argmax":
        return False
    return bool(torch.equal(mask, torch.full_like(mask, float("-inf")).triu(1)))


def cut_text_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """(batch, context) token rows → (batch, length): the columns up to the rows' last end-of-text token
    (the largest id of a row, as the CLIP tokenizer writes them)."""
    return tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]


def encode_cut_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens, normalize=True)` for rows of any length ≤ the context (positions and the
    causal mask cut to it) → (batch, dim). Only for models where `takes_cut_text` holds."""
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, model.text_pool_type)
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return F.normalize(x, dim=-1)


def encode_text_fast(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens, normalize=True)`, on the cut rows where the model allows it."""
    if takes_cut_text(model):
        return encode_cut_text(model, cut_text_tokens(tokens))
    return model.encode_text(tokens, normalize=True)
