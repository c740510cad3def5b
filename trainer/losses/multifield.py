"""MultiFieldGCLLoss: GCL over several fields — a fused document and a λ-weighted sum of field pairs.

docs/protocol.md ("The GCL loss"), multi-field form. Fields: "query" (text of the query), the document fields
"image" and "title", and "fused", the document vector stored in Qdrant:

    α'_f = α_f · present_f / Σ_g α_g · present_g        (field weights renormalised per document)
    v    = normalize(Σ_f α'_f · e_f)                     (fused document, f ∈ {image, title})
    L    = Σ_terms λ · GCL(left, right)                   (each term a `GCLLoss` on two fields)

A pair whose document lacks a field taking part in a term (present = False) is dropped from that
term: weight 0 and never a negative (`GCLLoss(valid=...)`). A document with no present field fuses
to the zero vector and is dropped from the fused terms the same way.

Example::

    loss_fn = MultiFieldGCLLoss(field_weights=FieldWeights(image=0.9, title=0.1),
                                terms=[("query", "fused", 1.0), ("title", "image", 0.5)])
    loss = loss_fn({"query": u, "image": e_img, "title": e_title},      # each (batch, dim), unit norm
                   logit_scale, present={"image": has_image, "title": has_title}, weights=w)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, DOCUMENT_FIELDS, FieldWeights
from gcl_vectordb.errors import ConfigError
from trainer.losses.gcl import GCLLoss, Normalization

LOSS_FIELDS: tuple[str, ...] = ("query", *DOCUMENT_FIELDS, "fused")
"""What a loss term may pair: the query text, a document field, or the fused document (as stored)."""


@dataclass(frozen=True)
class LossTerm:
    """One GCL term λ · GCL(left, right); left/right ∈ LOSS_FIELDS and differ, λ = `weight` ≥ 0."""

    left: str
    right: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        for side in (self.left, self.right):
            if side not in LOSS_FIELDS:
                raise ConfigError(f"unknown loss field {side!r}", f"use one of: {', '.join(LOSS_FIELDS)}")
        if self.left == self.right:
            raise ConfigError(f"a loss term needs two different fields, got {self.left!r} twice")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"loss term weight must be a number >= 0, got {self.weight}")

    @property
    def name(self) -> str:
        return f"{self.left}-{self.right}"


def fused_document_features(
    fields: Mapping[str, torch.Tensor],
    field_weights: FieldWeights,
    present: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """v = normalize(Σ_f α'_f e_f) with α renormalised over each document's present fields → (batch, dim).

    fields: document field features (batch, dim), unit norm; present: bool (batch,) per field (all
    True when missing). The torch counterpart of the protocol's fused vector; differentiable.
    """
    weighted, total = None, None
    for name, alpha in field_weights.positive().items():  # α = 0 needs no features
        features = fields[name]
        mask = _present(present, name, features)
        alpha_f = alpha * mask.to(features.dtype)  # (batch,)
        part = alpha_f[:, None] * features
        weighted = part if weighted is None else weighted + part
        total = alpha_f if total is None else total + alpha_f
    assert weighted is not None and total is not None  # FieldWeights has a positive weight
    # Dividing by Σα' does not turn the direction, but it keeps the pre-normalisation vector the
    # protocol's; the clamp leaves documents without any field at the zero vector.
    return F.normalize(weighted / total.clamp_min(1e-12)[:, None], dim=-1)


def _present(present: Mapping[str, torch.Tensor] | None, name: str, features: torch.Tensor) -> torch.Tensor:
    if present is None or name not in present:
        return torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    return present[name].to(device=features.device, dtype=torch.bool)


class MultiFieldGCLLoss(nn.Module):
    """L = Σ_terms λ · GCL(left, right) over query, image, title and fused features; see the module doc.

    normalize: each term's denominator, "sum_w" (Σ w) or "batch" (the pairs taking part); see `GCLLoss`.
    """

    def __init__(
        self,
        field_weights: FieldWeights = DEFAULT_FIELD_WEIGHTS,
        terms: Sequence[LossTerm | tuple[str, str, float]] = (LossTerm("query", "fused", 1.0),),
        normalize: Normalization = "sum_w",
    ) -> None:
        super().__init__()
        self.field_weights = field_weights
        self.terms = tuple(t if isinstance(t, LossTerm) else LossTerm(*t) for t in terms)
        if not self.terms:
            raise ConfigError("the multi-field loss needs at least one term", "e.g. (query, fused, 1.0)")
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate loss terms: {names}", "give each (left, right) pair once")
        self.gcl = GCLLoss(normalize)

    def term_losses(
        self,
        features: Mapping[str, torch.Tensor],
        logit_scale: torch.Tensor | float,
        present: Mapping[str, torch.Tensor] | None = None,
        weights: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Each term's unweighted GCL loss (scalar), keyed "left-right" — for logging; λ not applied."""
        needed = {side for term in self.terms for side in (term.left, term.right)}
        fused_fields = list(self.field_weights.positive())
        if "fused" in needed:
            needed |= set(fused_fields)
        missing = sorted(needed - {"fused"} - set(features))
        if missing:
            raise ConfigError(f"the multi-field loss needs features for {', '.join(missing)}")
        available = dict(features)
        # None = every document has the field, which keeps the uniform case on the plain-mean path.
        masks = {name: present[name].bool() for name in DOCUMENT_FIELDS if present and name in present}
        if "fused" in needed:
            available["fused"] = fused_document_features(available, self.field_weights, present)
            if all(name in masks for name in fused_fields):
                masks["fused"] = torch.stack([masks[name] for name in fused_fields]).any(dim=0)
        losses = {}
        for term in self.terms:
            valid = _both_present(masks.get(term.left), masks.get(term.right))
            losses[term.name] = self.gcl(
                available[term.left],
                available[term.right],
                logit_scale,
                weights=weights,
                query_ids=query_ids,
                valid=valid,
            )
        return losses

    def forward(
        self,
        features: Mapping[str, torch.Tensor],
        logit_scale: torch.Tensor | float,
        present: Mapping[str, torch.Tensor] | None = None,
        weights: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar Σ λ · GCL(left, right). features: {"query", "image", "title"} → (batch, dim), unit norm;
        present: {"image", "title"} → bool (batch,); weights: (batch,) or None; query_ids: (batch,) or None.
        """
        losses = self.term_losses(features, logit_scale, present, weights, query_ids)
        return sum(term.weight * losses[term.name] for term in self.terms)


def _both_present(left: torch.Tensor | None, right: torch.Tensor | None) -> torch.Tensor | None:
    if left is None:
        return right
    return left if right is None else left & right
