"""The open_clip model as the loss sees it: tokens and pixels in, unit-norm features and t out.

`ClipTowers` is the module DDP wraps (its forward is the one DDP synchronises). Texts run through
`encode_text_trimmed`: CLIP's text tower attends causally and pools at the end-of-text token, so the
padding columns after the last end-of-text token of a batch cannot change any pooled feature; cutting
them (77 → ~20 columns for product titles) gives the same features several times faster. A test checks
it against `encode_text` on the full context.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from torch import nn


def _trimmable(model: nn.Module, tokens: torch.Tensor) -> bool:
    """Only open_clip's built-in CLIP text tower with causal attention and argmax (end-of-text) pooling."""
    return (
        isinstance(model, CLIP)
        and getattr(model, "text_pool_type", None) == "argmax"
        and isinstance(getattr(model, "attn_mask", None), torch.Tensor)
        and model.positional_embedding.shape[0] == tokens.shape[1]
    )


def encode_text_trimmed(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens, normalize=True)` → (batch, dim), on the columns up to the last end-of-text.

    tokens: (batch, context) int64 as the CLIP tokenizer pads them (end-of-text = the largest id of a row).
    Other text towers run unchanged on the full context.
    """
    if not _trimmable(model, tokens):
        return model.encode_text(tokens, normalize=True)
    eot = tokens.argmax(dim=-1)  # (batch,)
    length = int(eot.max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot]
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return F.normalize(x, dim=-1)


class ClipTowers(nn.Module):
    """(query tokens, title tokens, pixels) → ({"query", "title", "image"}: (batch, dim) unit norm, t).

    `fields` names the features the loss needs; the others are not computed (and their tower's
    parameters get no gradient). t = exp(logit_scale), a scalar tensor. `trim_text=False` runs the text
    tower on the full context (open_clip's `encode_text`; the baseline of benchmarks/train_tiny.py).
    """

    def __init__(
        self, clip: nn.Module, fields: Collection[str] = ("query", "title", "image"), *, trim_text: bool = True
    ) -> None:
        super().__init__()
        self.clip = clip
        self.fields = frozenset(fields)
        self.trim_text = trim_text

    def forward(
        self, query_tokens: torch.Tensor, title_tokens: torch.Tensor, pixels: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        texts = [name for name in ("query", "title") if name in self.fields]
        if texts:
            tokens = torch.cat([query_tokens if name == "query" else title_tokens for name in texts])
            if self.trim_text:
                encoded = encode_text_trimmed(self.clip, tokens)
            else:
                encoded = self.clip.encode_text(tokens, normalize=True)
            encoded = encoded.split(query_tokens.shape[0])
            features.update(zip(texts, encoded, strict=True))
        if "image" in self.fields:
            features["image"] = self.clip.encode_image(pixels, normalize=True)
        return features, self.clip.logit_scale.exp()
