"""The domain's own types, defined once: field weights, search modes, model identity.

User input (CLI flags, `gcl-vdb.toml`, a training config, a collection record read from disk) is turned
into these types at the edge; inner layers accept only the types and never re-check a dict.
See docs/architecture.md ("Domain types").
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from gcl_vectordb.errors import ConfigError, ModelMismatch

DOCUMENT_FIELDS: tuple[str, ...] = ("image", "title")
"""The fields of a product document that get their own embedding (and their own named vector)."""


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """`"a=1, b=2"` → `{"a": "1", "b": "2"}`; an empty key or value, a missing `=` or a repeated key is a
    `ConfigError` naming `what` (the option or setting the text came from)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise ConfigError(f"{what}: expected key=value pairs separated by commas, got {item.strip()!r}")
        if key in pairs:
            raise ConfigError(f"{what}: {key} is given twice")
        pairs[key] = value
    return pairs


@dataclass(frozen=True)
class FieldWeights:
    """GCL field weights α_f of the fused document vector (docs/protocol.md, "The fused document").

        v = normalize( Σ_f α'_f · normalize(e_f) ),   α'_f = α_f · present_f / Σ_g α_g · present_g

    Each α is finite and ≥ 0, and at least one is positive. A field left out of a mapping or of
    `image=…,title=…` text has weight 0. The same type serves ingest (the stored `fused` vector), the
    `weighted` search mode and the trainer's fused document, so the three cannot drift apart.
    """

    image: float
    title: float

    def __post_init__(self) -> None:
        for name in DOCUMENT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"field weight {name}={value!r} is not a number")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"field weight {name}={value} must be finite and ≥ 0")
            object.__setattr__(self, name, float(value))
        if self.image + self.title <= 0:
            raise ConfigError("at least one field weight must be positive", "e.g. image=0.9,title=0.1")

    @classmethod
    def from_mapping(cls, weights: Mapping[str, Any], what: str = "field weights") -> FieldWeights:
        """`{"image": 0.9, "title": 0.1}` (a missing field weighs 0); unknown fields are an error."""
        unknown = sorted(set(weights) - set(DOCUMENT_FIELDS))
        if unknown:
            raise ConfigError(f"{what}: unknown field(s) {', '.join(map(str, unknown))}",
                              f"weight {' and/or '.join(DOCUMENT_FIELDS)}, e.g. image=0.9,title=0.1")
        return cls(**{name: weights.get(name, 0.0) for name in DOCUMENT_FIELDS})

    @classmethod
    def parse(cls, text: str, what: str = "field weights") -> FieldWeights:
        """`"image=0.9,title=0.1"` → `FieldWeights(0.9, 0.1)`; a value that is not a number is an error."""
        values: dict[str, float] = {}
        for key, value in parse_pairs(text, what).items():
            try:
                values[key] = float(value)
            except ValueError:
                raise ConfigError(f"{what}: {key}={value} is not a number") from None
        return cls.from_mapping(values, what)

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in DOCUMENT_FIELDS}

    def positive(self) -> dict[str, float]:
        """The fields with α > 0 (a field of weight 0 needs no embedding)."""
        return {name: value for name, value in self.as_dict().items() if value > 0}

    def __str__(self) -> str:
        return ",".join(f"{name}={value:g}" for name, value in self.as_dict().items())


DEFAULT_FIELD_WEIGHTS = FieldWeights(image=0.9, title=0.1)
"""The field weights of a new collection and of training when none are given (GCL's image-heavy default)."""


def _parse_choice(kind: type[StrEnum], value: Any, what: str) -> Any:
    """`kind(value)`, or a ConfigError naming `what` and the choices."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"unknown {what} {value!r}", f"use one of: {', '.join(m.value for m in kind)}") from None


class SearchMode(StrEnum):
    """How a text query searches a collection (see `gcl_vectordb.store.records.SearchRequest`).

    fused / image / title: nearest neighbours of the query on that named vector;
    rrf: reciprocal-rank fusion of the image and title rankings;
    weighted: Σ_f w_f · cos(q, e_f) over image and title, exact top-k;
    bm25: keyword search, BM25 of the query's words in the product titles (no model);
    hybrid: the fused-vector ranking and the BM25 ranking fused in the engine (`FusionMethod`).
    """

    fused = "fused"
    image = "image"
    title = "title"
    rrf = "rrf"
    weighted = "weighted"
    bm25 = "bm25"
    hybrid = "hybrid"

    @classmethod
    def parse(cls, value: str | SearchMode) -> SearchMode:
        return _parse_choice(cls, value, "search mode")

    @property
    def lexical(self) -> bool:
        """True for the modes that read the collection's BM25 sparse vector."""
        return self in (SearchMode.bm25, SearchMode.hybrid)

    @property
    def dense(self) -> bool:
        """True for the modes that need the query's embedding (all but bm25)."""
        return self is not SearchMode.bm25


class FusionMethod(StrEnum):
    """How the `hybrid` mode fuses the dense and the BM25 ranking (Qdrant's fusion queries).

    rrf: reciprocal rank fusion, Σ_i 1 / (k + position_i) over the two rankings, position 0-based;
    dbsf: distribution-based score fusion, Σ_i (s_i − (μ_i − 3σ_i)) / 6σ_i with μ_i, σ_i the mean and
    sample standard deviation of ranking i's scores (a ranking of one point, or of equal scores, scores 0.5).
    """

    rrf = "rrf"
    dbsf = "dbsf"

    @classmethod
    def parse(cls, value: str | FusionMethod) -> FusionMethod:
        return _parse_choice(cls, value, "fusion")


@dataclass(frozen=True)
class Preprocessing:
    """What turns an image and a text into tower inputs: two models with equal weights but other
    preprocessing embed differently, so this is part of a model's identity."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str
    fill_color: int
    context_length: int

    def digest(self) -> str:
        """A short stable hash of the fields (sha256 of their sorted JSON, 16 hex digits)."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model embeds: the sha256 of its weights, its dimension and its preprocessing.

    `model_ref` says where the model was loaded from and is informational: the ONNX bundle exported from
    a checkpoint and the checkpoint itself share an identity, while two bundles of equal dimension from
    different weights do not. Vectors of two models may be mixed in one collection only when
    `same_model` holds.
    """

    model_ref: str
    weights_sha256: str
    dim: int
    preprocessing: Preprocessing

    def same_model(self, other: ModelIdentity) -> bool:
        return (self.weights_sha256, self.dim, self.preprocessing) == (
            other.weights_sha256, other.dim, other.preprocessing)

    def short(self) -> str:
        """`<model_ref> (weights 1a2b3c4d…, dim 512)`: how messages name a model."""
        return f"{self.model_ref} (weights {self.weights_sha256[:12]}, dim {self.dim})"

    def require_same(self, other: ModelIdentity, collection: str) -> None:
        """Raise `ModelMismatch` naming both models unless `other` is this collection model (`self`)."""
        if self.same_model(other):
            return
        if self.dim != other.dim:
            what = f"embeds in {other.dim} dimensions but collection {collection!r} holds {self.dim}-dim vectors"
        elif self.weights_sha256 != other.weights_sha256:
            what = f"has other weights than the model that built collection {collection!r}"
        else:
            what = f"preprocesses inputs differently from the model that built collection {collection!r}"
        raise ModelMismatch(
            f"model {other.short()} {what}: {self.short()}",
            f"use {self.model_ref} (or leave --model out to use the collection's own model), "
            "or ingest into a new collection with this model",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIdentity:
        try:
            pre = dict(data["preprocessing"])
            pre["mean"], pre["std"] = tuple(pre["mean"]), tuple(pre["std"])
            return cls(model_ref=str(data["model_ref"]), weights_sha256=str(data["weights_sha256"]),
                       dim=int(data["dim"]), preprocessing=Preprocessing(**pre))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed model identity ({type(exc).__name__}: {exc})") from exc
