"""Score-to-weight transforms g(s): graded relevance of a (query, product) pair → its loss weight w.

docs/protocol.md, "Score-to-weight transforms": w_i = g(s_i) weighs pair i in the weighted symmetric
InfoNCE (`gcl.py`). The
score columns of a split (`score_linear`, `position`, `score_reciprocal`) travel in `ScoreColumns`;
a transform reads the column it needs and returns one float32 weight per pair, (batch,).

| name         | w = max(floor, g(s)) with g(s) =               | column            |
|--------------|------------------------------------------------|-------------------|
| `binary`     | 1 (the CLIP baseline; floor unused)             | none              |
| `linear`     | s / s_max                                       | score_linear      |
| `power`      | (s / s_max) ** gamma                            | score_linear      |
| `log`        | log(1 + s) / log(1 + s_max)                     | score_linear      |
| `reciprocal` | 1 / position, or score_reciprocal as given      | position / score_reciprocal |
| `rank_exp`   | exp(-(position - 1) / tau)                      | position          |

Negative scores count as 0 before the floor. `s_max` is `max_score` when given (call `fit` on the
whole split's columns to set it from the split, as the evaluation's relevance scale does), else the
maximum of the batch at hand. `floor` (default 0.01) keeps every pair in the loss; `floor=0` lets a
pair drop out. Only the ratios of weights within a batch matter when the loss divides by Σ w (its
default normalisation, `gcl.py`).

A *weight floor* f ∈ [0, 1] (`with_weight_floor`, config `loss.weight_floor`) mixes the graded
weights with uniform ones: w = f + (1 − f) · g(s). f = 0 is g itself, f = 1 is the CLIP baseline (w = 1);
in between every pair pulls with at least f of a top pair's strength, which raises the effective
sample size (Σw)² / (N Σw²) towards 1 while keeping the order of the weights.

Example::

    transform = make_weight_transform("power", gamma=2.0).fit(split_scores)
    weights = transform(ScoreColumns(score_linear=batch_scores))   # (batch,) float32
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from gcl_vectordb.data.records import Judgment
from gcl_vectordb.errors import ConfigError, DataError

SCORE_COLUMNS: tuple[str, ...] = ("score_linear", "position", "score_reciprocal")
DEFAULT_FLOOR = 0.01


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare
class ScoreColumns:
    """The score columns of N pairs, each a float32 tensor (N,) or None where the data lacks it.

    Array-likes are converted to float32 tensors. `num_rows` is only needed when every column is None
    (the binary transform still has to know N).
    """

    score_linear: torch.Tensor | None = None
    position: torch.Tensor | None = None
    score_reciprocal: torch.Tensor | None = None
    num_rows: int | None = None

    def __post_init__(self) -> None:
        lengths = set()
        for name in SCORE_COLUMNS:
            value = getattr(self, name)
            if value is None:
                continue
            column = torch.as_tensor(value, dtype=torch.float32)
            if column.dim() != 1:
                raise ConfigError(
                    f"score column {name} must be one-dimensional, got shape {tuple(column.shape)}"
                )
            object.__setattr__(self, name, column)
            lengths.add(column.shape[0])
        if self.num_rows is not None:
            lengths.add(self.num_rows)
        if len(lengths) > 1:
            raise ConfigError(f"score columns differ in length: {sorted(lengths)}")
        if not lengths:
            raise ConfigError("ScoreColumns needs at least one score column or num_rows")
        object.__setattr__(self, "num_rows", lengths.pop())

    @classmethod
    def from_judgments(cls, judgments: Sequence[Judgment]) -> ScoreColumns:
        """Columns of a batch of judgments: a column is kept when every judgment has a value for it."""
        columns: dict[str, Any] = {}
        for name in SCORE_COLUMNS:
            values = [getattr(j, name) for j in judgments]
            if all(v is not None for v in values):
                columns[name] = values
        return cls(num_rows=len(judgments), **columns)

    def column(self, name: str, needed_by: str) -> torch.Tensor:
        """The named column, checked finite; a clear ConfigError when the data lacks it."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(
                f"the {needed_by!r} weight transform needs the {name} column, which the data lacks",
                "add the column to the split, or pick a transform whose column the data has "
                "(binary needs none)",
            )
        bad = (~torch.isfinite(value)).nonzero().flatten()
        if bad.numel():
            raise DataError(f"{name} is not finite at rows {bad[:10].tolist()}", "fix or drop those rows")
        return value


@dataclass(frozen=True, kw_only=True)
class WeightTransform:
    """Base of the transforms: w = max(floor, g(s)) as float32 (N,). Subclasses define `raw` = g."""

    name: ClassVar[str] = ""
    floor: float = DEFAULT_FLOOR

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise ConfigError(f"weight floor must lie in [0, 1], got {self.floor}")

    def __call__(self, scores: ScoreColumns) -> torch.Tensor:
        return self.raw(scores).clamp_min(self.floor).to(torch.float32)

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, scores: ScoreColumns) -> WeightTransform:
        """A copy with split-level constants (such as `max_score`) taken from the whole split; default: self."""
        return self


WEIGHT_TRANSFORMS: dict[str, type[WeightTransform]] = {}


def _require_positive(transform: str, parameter: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{transform} weights need {parameter} > 0, got {value}")


def _register(cls: type[WeightTransform]) -> type[WeightTransform]:
    WEIGHT_TRANSFORMS[cls.name] = cls
    return cls


@_register
@dataclass(frozen=True, kw_only=True)
class BinaryWeights(WeightTransform):
    """w = 1 for every pair: the CLIP / cross-entropy baseline."""

    name: ClassVar[str] = "binary"

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        return torch.ones(scores.num_rows, dtype=torch.float32)

    def __call__(self, scores: ScoreColumns) -> torch.Tensor:
        return self.raw(scores)  # the baseline stays exactly 1, whatever the floor


@dataclass(frozen=True, kw_only=True)
class _MaxScaled(WeightTransform):
    """A transform of s = score_linear scaled by s_max (`max_score`, or the batch maximum when None)."""

    max_score: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_score is not None:
            _require_positive(self.name, "max_score", self.max_score)

    def fit(self, scores: ScoreColumns) -> WeightTransform:
        top = float(scores.column("score_linear", self.name).max())
        if top <= 0:
            raise DataError(f"score_linear is never positive in the split (max {top})", "check the column")
        return dataclasses.replace(self, max_score=top)

    def _scores_and_max(self, scores: ScoreColumns) -> tuple[torch.Tensor, float]:
        s = scores.column("score_linear", self.name).clamp_min(0.0)
        top = self.max_score if self.max_score is not None else float(s.max())
        if top <= 0:
            raise DataError("score_linear is never positive in this batch", "fit the transform on the split")
        return s, top


@_register
@dataclass(frozen=True, kw_only=True)
class LinearWeights(_MaxScaled):
    """w = score_linear / s_max."""

    name: ClassVar[str] = "linear"

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        s, top = self._scores_and_max(scores)
        return s / top


@_register
@dataclass(frozen=True, kw_only=True)
class PowerWeights(_MaxScaled):
    """w = (score_linear / s_max) ** gamma; gamma > 1 sharpens towards the top results."""

    name: ClassVar[str] = "power"
    gamma: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive("power", "gamma", self.gamma)

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        s, top = self._scores_and_max(scores)
        return (s / top).pow(self.gamma)


@_register
@dataclass(frozen=True, kw_only=True)
class LogWeights(_MaxScaled):
    """w = log(1 + score_linear) / log(1 + s_max): flatter than linear among the top results."""

    name: ClassVar[str] = "log"

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        s, top = self._scores_and_max(scores)
        return torch.log1p(s) / math.log1p(top)


def _positions(scores: ScoreColumns, needed_by: str) -> torch.Tensor:
    position = scores.column("position", needed_by)
    bad = (position < 1).nonzero().flatten()
    if bad.numel():
        raise DataError(f"position is below 1 at rows {bad[:10].tolist()}", "positions count from 1")
    return position


@_register
@dataclass(frozen=True, kw_only=True)
class ReciprocalWeights(WeightTransform):
    """w = 1 / position (`source="position"`), or the `score_reciprocal` column as given."""

    name: ClassVar[str] = "reciprocal"
    source: Literal["position", "score_reciprocal"] = "position"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source not in ("position", "score_reciprocal"):
            raise ConfigError(f"reciprocal source must be position or score_reciprocal, got {self.source!r}")

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        if self.source == "score_reciprocal":
            return scores.column("score_reciprocal", self.name).clamp_min(0.0)
        return 1.0 / _positions(scores, self.name)


@_register
@dataclass(frozen=True, kw_only=True)
class RankExpWeights(WeightTransform):
    """w = exp(-(position - 1) / tau): 1 at the top, 1/e after tau positions."""

    name: ClassVar[str] = "rank_exp"
    tau: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive("rank_exp", "tau", self.tau)

    def raw(self, scores: ScoreColumns) -> torch.Tensor:
        return torch.exp(-(_positions(scores, self.name) - 1.0) / self.tau)


@dataclass(frozen=True, kw_only=True)
class FlooredWeights(WeightTransform):
    """w = weight_floor + (1 − weight_floor) · inner(s): graded weights mixed with uniform ones.

    `inner` is any transform (its own clamp `floor` applies first); the result lies in
    [weight_floor, 1] when inner's does. Built by `with_weight_floor`.
    """

    inner: WeightTransform
    weight_floor: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.weight_floor) and 0.0 <= self.weight_floor <= 1.0):
            raise ConfigError(f"the weight floor must lie in [0, 1], got {self.weight_floor}",
                              "0 keeps the graded weights as they are, 1 makes every weight 1 (the CLIP loss)")

    @property
    def name(self) -> str:  # type: ignore[override]  # reported as the transform it floors
        return self.inner.name

    def __call__(self, scores: ScoreColumns) -> torch.Tensor:
        return (self.weight_floor + (1.0 - self.weight_floor) * self.inner(scores)).to(torch.float32)

    def fit(self, scores: ScoreColumns) -> WeightTransform:
        return dataclasses.replace(self, inner=self.inner.fit(scores))


def with_weight_floor(transform: WeightTransform, weight_floor: float) -> WeightTransform:
    """`transform` with the weight floor f: w = f + (1 − f) · g(s); `transform` itself for f = 0."""
    if weight_floor == 0.0:
        return transform
    return FlooredWeights(inner=transform, weight_floor=weight_floor)


def make_weight_transform(name: str, **params: Any) -> WeightTransform:
    """The registered transform `name` built with `params` (e.g. `gamma=2.0`, `floor=0.0`)."""
    cls = WEIGHT_TRANSFORMS.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown weight transform {name!r}", f"use one of: {', '.join(sorted(WEIGHT_TRANSFORMS))}"
        )
    accepted = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"weight transform {name!r} has no parameter {', '.join(unknown)}",
            f"it accepts: {', '.join(accepted)}",
        )
    return cls(**params)
