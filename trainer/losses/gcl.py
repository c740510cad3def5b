"""GCLLoss: the weighted symmetric InfoNCE of Generalized Contrastive Learning (docs/protocol.md,
"The GCL loss").

For a batch of N (query, document) pairs with unit-norm features u_i, v_i and weights w_i ≥ 0:

    S_ij = t · u_i · v_j                          (logits, t = exp'ed logit scale)
    ℓ_i  = ½ [ CE(S_i·, i) + CE(S_·i, i) ]        (query→document and document→query)
    L    = Σ_i w_i ℓ_i / Σ_i w_i                  (normalize="sum_w", the default)
    L    = Σ_i w_i ℓ_i / N                        (normalize="batch")

With w = 1 (or, for "sum_w", any constant) L is open_clip's `ClipLoss`, the CLIP baseline. Graded
weights from `weights.py` make high-relevance pairs pull harder (GCL: Zhu et al., "Generalized
Contrastive Learning for Multi-Modal Retrieval and Ranking", Marqo 2024).

Normalisation: dividing by Σ w makes every batch contribute a weighted *mean* — only the ratios of the
weights within a batch matter, and a batch of low-grade pairs moves the model as far as a batch of
top results. Dividing by the batch size N (the pairs that take part: `valid` ones) keeps the weights'
absolute size: a batch's pull is proportional to its mean weight, so batches rich in top results
count for more, and the loss is scaled by mean w overall (which AdamW largely normalises away).

Exclusions (false negatives): with `query_ids`, a logit S_ij with i ≠ j whose pairs share the query is
set to −inf, in both directions, so a duplicated query is never its own negative; `document_ids` does
the same for duplicated products. `valid` (bool (N,)) drops pairs entirely: weight 0 and never a
negative (a document that lacks the field being compared). The diagonal is never excluded.

Distributed (torchrun, DDP): features are all-gathered with gradient and weights, ids and `valid`
without, so every rank computes the loss over the global batch (global negatives), like open_clip's
`ClipLoss(local_loss=False, gather_with_grad=True)`. World size 1 is the same code path (the gathers
are identities). See `trainer/distributed.py` for the gradient convention under DDP.

Example::

    loss_fn = GCLLoss()
    u = F.normalize(model.encode_text(queries), dim=-1)          # (batch, dim)
    v = F.normalize(model.encode_image(images), dim=-1)          # (batch, dim)
    w = make_weight_transform("linear")(ScoreColumns(score_linear=scores))   # (batch,)
    loss = loss_fn(u, v, model.logit_scale.exp(), weights=w.to(u.device), query_ids=qids)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gcl_vectordb.errors import ConfigError
from trainer.distributed import gather_no_grad, gather_with_grad

Normalization = Literal["sum_w", "batch"]
LOSS_NORMALIZATIONS: tuple[str, ...] = ("sum_w", "batch")


def excluded_pairs(
    query_ids: torch.Tensor | None = None,
    document_ids: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Boolean (N, N) mask of the logits to drop from the softmax denominators, or None when none are.

    (i, j), i ≠ j, is excluded when pairs i and j share the query id, share the document id, or either
    is not `valid`. The mask is symmetric, so it serves S and Sᵀ alike; its diagonal is always False.
    """
    given = [t for t in (query_ids, document_ids, valid) if t is not None]
    if not given:
        return None
    n = given[0].shape[0]
    excluded = torch.zeros(n, n, dtype=torch.bool, device=given[0].device)
    for ids in (query_ids, document_ids):
        if ids is not None:
            excluded |= ids[:, None] == ids[None, :]
    if valid is not None:
        excluded |= ~valid[:, None] | ~valid[None, :]
    excluded.fill_diagonal_(False)
    return excluded


def weighted_symmetric_infonce(
    query_features: torch.Tensor,
    document_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    weights: torch.Tensor | None = None,
    excluded: torch.Tensor | None = None,
    denominator: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """L = Σ w_i ½[CE(S_i·, i) + CE(S_·i, i)] / D on one (already gathered) batch; see the module doc.

    query_features, document_features: (N, dim); weights: (N,) or None (uniform → the plain mean);
    excluded: bool (N, N) or None; denominator: D, None for Σ w_i (the weighted mean). Returns a
    scalar (float32 or the features' dtype under autocast).
    """
    logits = logit_scale * query_features @ document_features.T  # (N, N): row i = query i
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    per_pair = 0.5 * (
        F.cross_entropy(logits, labels, reduction="none")
        + F.cross_entropy(logits.T, labels, reduction="none")
    )
    if weights is None:
        return per_pair.mean()
    weights = weights.to(per_pair.dtype)
    total = (weights * per_pair).sum()
    if denominator is not None:
        return total / max(float(denominator), 1.0)
    # The clamp keeps an all-zero-weight batch at loss 0 (no gradient) instead of 0/0.
    return total / weights.sum().clamp_min(torch.finfo(per_pair.dtype).tiny)


class GCLLoss(nn.Module):
    """Weighted symmetric InfoNCE over the global batch (all ranks); see the module docstring.

    normalize: "sum_w" (L divided by Σ w) or "batch" (divided by the number of valid pairs N).
    """

    def __init__(self, normalize: Normalization = "sum_w") -> None:
        super().__init__()
        if normalize not in LOSS_NORMALIZATIONS:
            raise ConfigError(f"unknown loss normalisation {normalize!r}", f"use one of: {', '.join(LOSS_NORMALIZATIONS)}")
        self.normalize = normalize

    def forward(
        self,
        query_features: torch.Tensor,
        document_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        weights: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar loss.

        query_features, document_features: (batch, dim), unit norm. logit_scale: scalar t, already
        exp'ed. weights: (batch,) ≥ 0, or None for uniform (the CLIP loss). query_ids, document_ids:
        (batch,) int64, or None for no masking. valid: (batch,) bool, or None when every pair counts.
        Every rank must pass the same batch size.
        """
        _check_shapes(query_features, document_features, weights, query_ids, document_ids, valid)
        if valid is not None:
            weights = valid.to(query_features.dtype) if weights is None else weights * valid
        all_queries = gather_with_grad(query_features)
        all_documents = gather_with_grad(document_features)
        excluded = excluded_pairs(
            *(None if t is None else gather_no_grad(t) for t in (query_ids, document_ids, valid))
        )
        all_weights = None if weights is None else gather_no_grad(weights)
        denominator = None
        if self.normalize == "batch" and all_weights is not None:
            all_valid = None if valid is None else gather_no_grad(valid)
            denominator = all_queries.shape[0] if all_valid is None else all_valid.sum()
        return weighted_symmetric_infonce(all_queries, all_documents, logit_scale, all_weights, excluded,
                                          denominator)


def _check_shapes(
    query_features: torch.Tensor, document_features: torch.Tensor, *per_pair: torch.Tensor | None
) -> None:
    if query_features.dim() != 2 or query_features.shape != document_features.shape:
        raise ValueError(
            "query and document features must both be (batch, dim), got "
            f"{tuple(query_features.shape)} and {tuple(document_features.shape)}"
        )
    n = query_features.shape[0]
    for t in per_pair:
        if t is not None and t.shape != (n,):
            raise ValueError(f"per-pair tensors must be ({n},), got {tuple(t.shape)}")
