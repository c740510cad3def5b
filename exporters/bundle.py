"""`export_bundle`: a model reference → a verified ONNX bundle folder (towers, vocabulary, manifest).

Steps: load the torch model → export both towers (fp32) → make the requested variants → write the
manifest → run every variant against torch on a fixed batch → record the figures. fp32 must agree
within `parity_tolerance` (max cosine deviation) or the export fails; int8/fp16 figures are reported.
Work happens in a scratch folder next to `out`, which replaces `out` only when everything passed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporters.parity import tower_parity
from exporters.towers import export_tower, text_length_is_dynamic
from exporters.variants import MAKERS
from gcl_vectordb import __version__
from gcl_vectordb.encoders.manifest import (
    VARIANTS,
    ExportManifest,
    SourceInfo,
    TokenizerSpec,
    TowerFiles,
    file_sha256,
)
from gcl_vectordb.encoders.models import LoadedClip, create_clip_model, weights_sha256
from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder
from gcl_vectordb.encoders.refs import MANIFEST_FILE, resolve_model_ref
from gcl_vectordb.encoders.tokenizer import TOKENIZER_NAME, VOCAB_FILE, open_clip_vocab_path
from gcl_vectordb.errors import ConfigError, ExportError
from gcl_vectordb.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportConfig:
    """What to export. Give `model_ref` (any model reference), or `checkpoint` (a checkpoint or run folder;
    a weights file needs `model_ref` = its architecture). Example:
    `ExportConfig(checkpoint=Path("runs/demo"), out=Path("gcl-vdb-work/model"), variants=("fp32", "int8"))`.
    """

    out: Path
    model_ref: str | None = None
    checkpoint: Path | None = None
    variants: tuple[str, ...] = ("fp32",)
    opset: int = 18  # the cut-length text tower (exporters/towers.py) needs ≥ 18; lower exports it at full length
    dynamo: bool = False
    parity_tolerance: float = 1e-4
    parity_batch: int = 5

    def __post_init__(self) -> None:
        if self.model_ref is None and self.checkpoint is None:
            raise ConfigError("nothing to export", "give --model REF or --checkpoint PATH")
        if self.model_ref is not None and self.checkpoint is not None and not self._file_checkpoint:
            raise ConfigError("give --model or --checkpoint, not both",
                              "both together only for a weights file: --checkpoint w.safetensors --model ARCH")
        unknown = set(self.variants) - set(VARIANTS)
        if unknown or "fp32" not in self.variants:
            raise ConfigError(f"variants must include fp32 and be among {VARIANTS}, got {self.variants}")
        if not 11 <= self.opset <= 23:
            raise ConfigError(f"opset {self.opset} is outside the supported range 11..23")
        if self.parity_tolerance <= 0 or self.parity_batch < 2:
            raise ConfigError("parity tolerance must be > 0 and the parity batch ≥ 2")

    @property
    def _file_checkpoint(self) -> bool:
        return self.checkpoint is not None and self.model_ref is not None and Path(self.checkpoint).is_file()

    @property
    def source_ref(self) -> str:
        """The model reference to export: `model_ref`, the checkpoint folder, or `ARCH:/path/file`."""
        if self._file_checkpoint:
            return f"{self.model_ref}:{Path(self.checkpoint).resolve()}"
        return str(self.checkpoint) if self.checkpoint is not None else str(self.model_ref)


def export_bundle(config: ExportConfig, progress: Progress = NULL_PROGRESS) -> ExportManifest:
    """Export, verify and write the bundle at `config.out`; returns its manifest (with parity figures)."""
    source = resolve_model_ref(config.source_ref)
    out = Path(config.out).expanduser().resolve()
    _check_out(out)
    steps = progress.task("export", total=3 + 2 * len(config.variants), unit="step")
    loaded = create_clip_model(source)
    steps.advance()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = _export_into(work, loaded, config, steps)
        work.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    steps.advance()
    steps.close()
    log.info("exported %s to %s (%s)", source.ref, out, ", ".join(config.variants))
    return manifest


def _export_into(work: Path, loaded: LoadedClip, config: ExportConfig, steps) -> ExportManifest:
    opset = max(export_tower(loaded, t, work / f"{t}.onnx", opset=config.opset, dynamo=config.dynamo)
                for t in ("text", "image"))
    steps.advance()
    for variant in config.variants:
        if variant != "fp32":
            for tower in ("text", "image"):
                MAKERS[variant](work / f"{tower}.onnx", work / f"{tower}.{variant}.onnx")
        steps.advance()
    shutil.copyfile(open_clip_vocab_path(), work / VOCAB_FILE)
    source = SourceInfo(model_ref=loaded.source.ref, weights_sha256=weights_sha256(loaded.model))
    _manifest(loaded, work, config.variants, opset, source, parity={}).write(work)
    parity = {}
    for variant in config.variants:
        encoder = OnnxEncoder(work, variant=variant, device="cpu", batch_size=64)
        parity[variant] = tower_parity(loaded, encoder, batch=config.parity_batch)
        steps.advance()
    _require_parity(parity["fp32"], config.parity_tolerance)
    manifest = _manifest(loaded, work, config.variants, opset, source, parity=parity)
    manifest.write(work)
    return manifest


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an empty folder or an earlier bundle."""
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file()):
        raise ConfigError(f"{out} exists and is not an ONNX bundle", "choose an empty or new --out folder")


def _require_parity(fp32: dict, tolerance: float) -> None:
    worst = max(fp32.values(), key=lambda p: p.max_cosine_deviation)
    if worst.max_cosine_deviation > tolerance:
        tower = next(t for t, p in fp32.items() if p is worst)
        raise ExportError(
            f"ONNX {tower} tower disagrees with torch: max cosine deviation {worst.max_cosine_deviation:.2e} "
            f"> {tolerance:.0e} (max |Δ| {worst.max_abs_diff:.2e}); the bundle was not written",
            "try another --opset, or report the architecture as unsupported",
        )


def _manifest(loaded: LoadedClip, folder: Path, variants: tuple[str, ...], opset: int, source: SourceInfo,
              parity: dict) -> ExportManifest:
    files = {}
    for variant in variants:
        suffix = "" if variant == "fp32" else f".{variant}"
        text, image = f"text{suffix}.onnx", f"image{suffix}.onnx"
        files[variant] = TowerFiles(text, image, file_sha256(folder / text), file_sha256(folder / image))
    preprocessor = loaded.preprocessor()
    return ExportManifest(
        architecture=loaded.architecture, model_config=loaded.model_config, embed_dim=loaded.embed_dim,
        image_size=loaded.image_size, mean=preprocessor.mean, std=preprocessor.std,
        interpolation=preprocessor.interpolation, resize_mode=preprocessor.resize_mode,
        fill_color=preprocessor.fill_color, context_length=loaded.context_length,
        dynamic_text_length=text_length_is_dynamic(folder / "text.onnx"),
        tokenizer=TokenizerSpec(TOKENIZER_NAME, VOCAB_FILE, file_sha256(folder / VOCAB_FILE), loaded.context_length),
        opset=opset, variants=files,
        source=source, parity=parity, created_by=f"gcl-vdb {__version__}",
    )
