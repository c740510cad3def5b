"""TrainConfig: the frozen settings tree of a GCL training run — a TOML/YAML file, then CLI overrides.

    config = load_config(Path("train.toml"), overrides=["optim.lr=1e-3", "loss.kind=clip"])
    config = TrainConfig.from_dict({"out": "runs/demo", "data": {"root": "gs"}, "optim": {"lr": 5e-4}})

A file holds the keys of `TrainConfig.to_dict()` (sections `model`, `data`, `loss`, `optim`, `eval` and
the top-level scalars); missing keys keep their defaults. An override is `key.sub=value`: the value is
read with `ast.literal_eval` (numbers, strings, tuples, lists, dicts, True/False/None) and falls back to
the raw text — never `eval` — then checked against the field's type. Text and path fields take the raw
text as written. Keys inside a mapping field are addressed the same way (`loss.weight_params.gamma=2`).
Unknown keys and ill-typed values are `ConfigError`s naming the valid keys or the expected type.
`loss.kind = "clip"` is the baseline preset: every pair weighs 1 (the CLIP / cross-entropy loss).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gcl_vectordb.data import DataError, get_split
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.errors import ConfigError
from trainer.config_parsing import apply_overrides as _apply_overrides
from trainer.config_parsing import build_dataclass, parse_override, plain, read_config_file
from trainer.losses import (
    LossTerm,
    MultiFieldGCLLoss,
    WeightTransform,
    make_weight_transform,
    with_weight_floor,
)

__all__ = [
    "DataConfig", "EvalConfig", "LossConfig", "ModelConfig", "OptimConfig", "TrainConfig",
    "apply_overrides", "load_config", "parse_override", "read_config_file",
]


@dataclass(frozen=True)
class ModelConfig:
    """The model to fine-tune: `name` is any gcl_vectordb model reference (`gcl-tiny`, `ViT-B-32`, a
    checkpoint or run folder, `ARCH:TAG`); `pretrained` (an open_clip tag or a weights file) is appended
    as `name:pretrained`."""

    name: str = "gcl-tiny"
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("model.name is empty", "name an architecture such as gcl-tiny or ViT-B-32")
        if self.pretrained is not None and ":" in self.name:
            raise ConfigError(f"model.name {self.name!r} already names its weights; drop model.pretrained")

    @property
    def ref(self) -> str:
        return self.name if self.pretrained is None else f"{self.name}:{self.pretrained}"


@dataclass(frozen=True)
class DataConfig:
    """Training pairs: `split` of the dataset at `root` (images under `images_dir`, default: found next to
    it). `weight_column` is the graded score s: the weight transforms read it as score_linear, and the
    evaluation hook rescales it into relevance 1..100 (the protocol uses score_linear).

    max_pairs: keep a seeded random subset of the training pairs (None: all). workers: DataLoader worker
    processes that decode images (0: in the training process; None: 0 on the CPU, where workers would
    take cores from the model, else min(8, CPUs per process)). augment: random resized crop + flip.

    pairs: "queries" — (query, product) pairs of `split`, graded by `weight_column`; "captions" — one
    (caption, product) pair per product of every corpus at `root` whose corpus entry has a
    `caption_field` text other than its title (image–caption pretraining with the plain CLIP loss: no
    split, no grades; the product is the document as in fine-tuning, image and title).
    """

    root: Path | None = None
    pairs: Literal["queries", "captions"] = "queries"
    caption_field: str = "caption"
    split: str = "in-domain"
    weight_column: str = "score_linear"
    images_dir: Path | None = None
    max_pairs: int | None = None
    workers: int | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        try:
            get_split(self.split)
        except DataError as exc:
            raise ConfigError(f"data.split: {exc.message}", exc.hint) from None
        _check(self.max_pairs is None or self.max_pairs >= 1, "data.max_pairs must be ≥ 1 (or None)")
        _check(self.workers is None or self.workers >= 0, "data.workers must be ≥ 0 (or None: automatic)")


@dataclass(frozen=True)
class LossConfig:
    """docs/protocol.md, "The GCL loss": L = Σ_terms λ · GCL(left, right), pair weights w = g(score).

    kind: "gcl" (weights from the `weights` transform with `weight_params`) or "clip" (w = 1).
    field_weights: α of the fused document. logit_scale_init: t at the start for a model that starts from
    random weights (an architecture without pretrained weights; None: open_clip's 1/0.07); pretrained and
    fine-tuned weights keep the t they learnt. t is clamped to ≤ logit_scale_max after every step, as
    open_clip does. The default 50 is tuned on gcl-tiny and the synthetic benchmark (14.3 → 50 raises the
    held-out NDCG@10 after 3 epochs from ≈ 0.30 to ≈ 0.43; t itself moves slowly at these learning rates).

    weight_floor: f in w = f + (1 − f) · g(s) (0: the graded weights as they are; 1: every weight 1).
    normalize: divide the weighted loss by Σ w ("sum_w", a weighted mean) or by the number of pairs
    ("batch"); see trainer/losses/gcl.py. Both are no-ops for the clip preset.
    """

    kind: Literal["gcl", "clip"] = "gcl"
    weights: str = "linear"
    weight_params: dict[str, float] = field(default_factory=dict)
    weight_floor: float = 0.0
    normalize: Literal["sum_w", "batch"] = "sum_w"
    field_weights: FieldWeights = DEFAULT_FIELD_WEIGHTS
    terms: tuple[tuple[str, str, float], ...] = (("query", "fused", 1.0),)
    mask_same_query: bool = True
    logit_scale_init: float | None = 50.0
    logit_scale_max: float = 100.0

    def __post_init__(self) -> None:
        self.weight_transform()  # unknown transform or parameter → ConfigError
        MultiFieldGCLLoss(self.field_weights, self.terms, self.normalize)  # bad fields, terms, α → ConfigError
        _check(self.logit_scale_max > 0, "loss.logit_scale_max must be > 0")
        _check(self.logit_scale_init is None or 0 < self.logit_scale_init <= self.logit_scale_max,
               f"loss.logit_scale_init must lie in (0, logit_scale_max = {self.logit_scale_max}]")

    def weight_transform(self) -> WeightTransform:
        """The score-to-weight transform: binary for the clip preset, else `weights(**weight_params)`
        with the weight floor."""
        if self.kind == "clip":
            return make_weight_transform("binary")
        return with_weight_floor(make_weight_transform(self.weights, **self.weight_params), self.weight_floor)

    def loss_terms(self) -> tuple[LossTerm, ...]:
        return tuple(LossTerm(*term) for term in self.terms)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (no weight decay on biases, norms, 1-d parameters and the logit scale) with linear warm-up
    over `warmup_steps`, then cosine decay to `min_lr_ratio · lr` (or constant); gradients clipped to
    the L2 norm `grad_clip` (None: off); `accumulation` micro-batches per optimizer step."""

    lr: float = 5e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 20
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    accumulation: int = 1

    def __post_init__(self) -> None:
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr must be a positive number")
        _check(self.weight_decay >= 0, "optim.weight_decay must be ≥ 0")
        _check(all(0 <= b < 1 for b in self.betas), "optim.betas must lie in [0, 1)")
        _check(self.eps > 0 and self.warmup_steps >= 0, "optim.eps must be > 0 and optim.warmup_steps ≥ 0")
        _check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio must lie in [0, 1]")
        _check(self.grad_clip is None or self.grad_clip > 0, "optim.grad_clip must be > 0 (or None)")
        _check(self.accumulation >= 1, "optim.accumulation must be ≥ 1")


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation hook: NDCG@10, ERR, … of held-out queries by exact search in memory.

    A `holdout_fraction` of the split's queries (seeded, at most `top_q`) is kept out of training; `top_q`
    of them are sampled as the protocol samples test queries, judged to depth `top_k`, retrieved to depth `k` from
    the split's corpus (at most `max_products`: the judged products plus a seeded sample of the rest).
    Runs before training (`before_training`), at each epoch end (`every_epoch`), every `every_steps`.
    """

    holdout_fraction: float = 0.2
    top_q: int = 2000
    top_k: int = 1000
    k: int = 1000
    max_products: int | None = 20_000
    every_steps: int = 0
    every_epoch: bool = True
    before_training: bool = True
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check(0 <= self.holdout_fraction < 1, "eval.holdout_fraction must lie in [0, 1)")
        _check(min(self.top_q, self.top_k, self.k, self.batch_size) >= 1,
               "eval.top_q, eval.top_k, eval.k and eval.batch_size must be ≥ 1")
        _check(self.max_products is None or self.max_products >= 1, "eval.max_products must be ≥ 1 (or None)")
        _check(self.every_steps >= 0, "eval.every_steps must be ≥ 0 (0: off)")

    @property
    def enabled(self) -> bool:
        return self.holdout_fraction > 0


@dataclass(frozen=True)
class TrainConfig:
    """A training run: write to `out` (the run folder), train `epochs` epochs (or stop at `max_steps`
    optimizer steps) with `batch_size` pairs per process and step. precision: "auto" = bf16 autocast on
    CUDA, fp32 on the CPU. Checkpoints at every epoch end, every `checkpoint_every_steps` (0: off), at
    the end and on Ctrl-C; `keep_checkpoints` newest are kept (0: all)."""

    out: Path | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    batch_size: int = 64
    epochs: int = 3
    max_steps: int | None = None
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: str = "auto"
    log_every: int = 10
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 0

    def __post_init__(self) -> None:
        _check(self.batch_size >= 2, "batch_size must be ≥ 2 (a contrastive batch needs negatives)")
        _check(self.epochs >= 1, "epochs must be ≥ 1")
        _check(self.max_steps is None or self.max_steps >= 1, "max_steps must be ≥ 1 (or None)")
        _check(self.seed >= 0 and self.log_every >= 1, "seed must be ≥ 0 and log_every ≥ 1")
        _check(self.checkpoint_every_steps >= 0 and self.keep_checkpoints >= 0,
               "checkpoint_every_steps and keep_checkpoints must be ≥ 0")
        if self.data.pairs == "captions":
            _check_caption_pretraining(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build and validate from nested plain values (a parsed file); unknown keys are errors."""
        return build_dataclass(cls, values)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain values (paths as text, tuples as lists): what `from_dict` and a TOML file take."""
        return plain(dataclasses.asdict(self))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_caption_pretraining(config: TrainConfig) -> None:
    """data.pairs = "captions": there are no grades and no queries to hold out."""
    _check(config.loss.kind == "clip", "data.pairs=captions has no grades: pretrain with loss.kind=clip")
    _check(not config.eval.enabled, "data.pairs=captions has no queries to hold out: set eval.holdout_fraction=0")


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `TrainConfig.to_dict()`-shaped `values` with each `key.sub=value` override set."""
    return _apply_overrides(values, overrides, TrainConfig)


def load_config(
    path: Path | None = None,
    *,
    updates: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """Defaults ← the file at `path` ← `updates` ({"data.root": Path(...)}, typed values from CLI flags,
    None values skipped) ← `overrides` ("key.sub=value" texts). Validated once, at the end."""
    values = TrainConfig.from_dict(read_config_file(path) if path is not None else {}).to_dict()
    for key, value in (updates or {}).items():
        if value is not None:
            values = _set_value(values, key, value)
    return TrainConfig.from_dict(apply_overrides(values, overrides))


def _set_value(values: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    node, parts = values, key.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = plain(value)
    return values
