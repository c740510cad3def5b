"""One code path for one process and for torchrun: the distributed context and feature gathering.

With world size 1 every function here is the identity (or a cheap no-op), so the loss and the
training loop never branch on "distributed or not". Under torchrun (`RANK`, `WORLD_SIZE`,
`LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT` set) `init_distributed` starts the process group and the
gather functions concatenate every rank's tensor along dim 0, rank order, so each rank sees the
global batch (global negatives).

Gradient convention (open_clip's `gather_with_grad=True`): every rank computes the same global loss,
and the backward of `gather_with_grad` sums the gradients that all ranks send to a slice. The
gradient a rank gets for its local features is therefore `world_size ×` the gradient of the global
loss; DistributedDataParallel's gradient averaging (÷ world_size) turns that into exactly the
gradient of one process training on the whole global batch.

Example (each rank)::

    ctx = init_distributed()            # reads torchrun's variables; world size 1 when absent
    all_features = gather_with_grad(features)   # (world_size * batch, dim)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn  # the autograd-aware collectives

from gcl_vectordb.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: global `rank` of `world_size` processes, `local_rank` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ConfigError(
                f"invalid distributed context: rank {self.rank}, world size {self.world_size}, "
                f"local rank {self.local_rank}",
                "launch with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK consistently",
            )

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str | torch.device | None = None) -> DistributedContext:
        """Read torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`; one process (rank 0 of 1) when unset.

        `device` defaults to `cuda:<local_rank>` where CUDA is available, else the CPU.
        """
        rank = _env_int("RANK", 0)
        world_size = _env_int("WORLD_SIZE", 1)
        local_rank = _env_int("LOCAL_RANK", 0)
        if device is None:
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, device=torch.device(device))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(
            f"environment variable {name}={value!r} is not an integer", "unset it or fix it"
        ) from exc


def init_distributed(
    backend: str | None = None,
    *,
    init_method: str = "env://",
    device: str | torch.device | None = None,
    timeout: timedelta | None = None,
) -> DistributedContext:
    """Start the process group when torchrun launched several processes, and return the context.

    `backend`: "nccl" (GPUs) or "gloo" (CPUs); None picks nccl where CUDA is available. With world
    size 1 nothing is started. `init_method` is torch's rendezvous URL (`env://` under torchrun, or
    `file:///path` / `tcp://host:port` in tests). Calling it again in an initialised process is a no-op.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown distributed backend {backend!r}", f"use one of: {', '.join(BACKENDS)}")
    ctx = DistributedContext.from_env(device)
    if not ctx.is_distributed or dist.is_initialized():
        return ctx
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    kwargs = {"timeout": timeout} if timeout is not None else {}
    dist.init_process_group(
        backend, init_method=init_method, rank=ctx.rank, world_size=ctx.world_size, **kwargs
    )
    log.info("process group up: rank %d of %d, backend %s", ctx.rank, ctx.world_size, backend)
    return ctx


def cleanup_distributed() -> None:
    """Tear the process group down (end of a recipe); a no-op when none was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """The number of processes in the default group; 1 when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' `tensor` (batch, ...) concatenated in rank order → (world_size * batch, ...), with gradient.

    Every rank must pass the same shape. The backward sums the gradients all ranks send to each slice
    (open_clip's convention, see the module docstring). World size 1: returns `tensor` itself.
    """
    if world_size() == 1:
        return tensor
    return torch.cat(dist_fn.all_gather(tensor), dim=0)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' `tensor` (batch, ...) concatenated in rank order, without gradient (weights, ids, masks).

    Booleans travel as uint8 (not every backend reduces bool). World size 1: returns `tensor` itself.
    """
    size = world_size()
    if size == 1:
        return tensor
    sent = tensor.detach().contiguous()
    if sent.dtype == torch.bool:
        sent = sent.to(torch.uint8)
    parts = [torch.empty_like(sent) for _ in range(size)]
    dist.all_gather(parts, sent)
    return torch.cat(parts, dim=0).to(tensor.dtype)
