"""AdamW with open_clip's weight-decay split, and the warm-up + cosine learning-rate schedule.

Weight decay skips what open_clip skips: parameters with fewer than 2 dimensions (biases, norm gains,
class embedding), norm layers and the logit scale.

Schedule (factor of the base lr at 0-based optimizer step s, W warm-up steps, T total steps):
    s < W:       (s + 1) / W
    cosine:      r + (1 − r) · ½ (1 + cos(π · min(1, (s − W) / max(1, T − W))))      r = min_lr_ratio
    constant:    1
The factor function is a plain function, so `LambdaLR.state_dict()` stores no lambda state: a resumed
run recomputes the schedule from its config and the saved step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainer.config import OptimConfig


def _no_decay(name: str, parameter: nn.Parameter) -> bool:
    return parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name


def create_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters: two groups, with and without weight decay."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not _no_decay(n, p)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if _no_decay(n, p)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=config.lr, betas=config.betas, eps=config.eps
    )


def lr_factor(config: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """The schedule's factor of the base lr at optimizer step s (see the module docstring)."""
    warmup, ratio, cosine = config.warmup_steps, config.min_lr_ratio, config.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def create_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total_steps))
