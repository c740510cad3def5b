"""The open_clip model as the loss sees it: tokens and pixels in, unit-norm features and t out.

`ClipTowers` is the module DDP wraps (its forward is the one DDP synchronises). Texts run through
`gcl_vectordb.encoders.models.encode_text_fast`: CLIP's text tower attends causally and pools at the
end-of-text token, so the padding columns after the last end-of-text token of a batch cannot change any
pooled feature; cutting them (77 → ~20 columns for product titles) gives the same features several
times faster. A test checks it against `encode_text` on the full context.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from gcl_vectordb.encoders.models import encode_text_fast


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
                encoded = encode_text_fast(self.clip, tokens)
            else:
                encoded = self.clip.encode_text(tokens, normalize=True)
            encoded = encoded.split(query_tokens.shape[0])
            features.update(zip(texts, encoded, strict=True))
        if "image" in self.fields:
            features["image"] = self.clip.encode_image(pixels, normalize=True)
        return features, self.clip.logit_scale.exp()
