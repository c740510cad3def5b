"""Distributed GCL = one process on the doubled batch: 2 CPU processes on gloo against the plain reference.

Each rank holds half the batch; features are gathered with gradient, so the loss is the global one.
Gradient convention (open_clip's): a rank's gradient on its own features is world_size × the reference
gradient, and DDP's averaging turns the parameter gradients into exactly the reference ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from gcl_vectordb.errors import ConfigError
from trainer.distributed import (
    DistributedContext,
    cleanup_distributed,
    gather_no_grad,
    gather_with_grad,
    init_distributed,
)
from trainer.losses import GCLLoss

WORLD_SIZE = 2
BATCH, DIM_IN, DIM = 12, 6, 5  # global batch; each rank gets BATCH // WORLD_SIZE


class TwoTowers(nn.Module):
    """A stand-in for CLIP: two linear towers and a learnable (log) logit scale."""

    def __init__(self) -> None:
        super().__init__()
        self.text = nn.Linear(DIM_IN, DIM)
        self.image = nn.Linear(DIM_IN, DIM)
        self.log_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, xq: torch.Tensor, xd: torch.Tensor):
        return F.normalize(self.text(xq), dim=-1), F.normalize(self.image(xd), dim=-1), self.log_scale.exp()


def make_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    qids = torch.tensor([0, 1, 2, 0, 3, 4, 5, 2, 6, 7, 0, 8])  # duplicates across the two ranks' halves
    return {
        "u": F.normalize(torch.randn(BATCH, DIM, generator=g), dim=-1),
        "v": F.normalize(torch.randn(BATCH, DIM, generator=g), dim=-1),
        "t": torch.tensor(7.5),
        "w": torch.rand(BATCH, generator=g) + 0.05,
        "qids": qids,
        "valid": torch.arange(BATCH) != 4,
        "xq": torch.randn(BATCH, DIM_IN, generator=g),
        "xd": torch.randn(BATCH, DIM_IN, generator=g),
    }


def compute(data: dict[str, torch.Tensor], rows: slice, ddp: bool) -> dict[str, torch.Tensor]:
    """Loss and gradients on `rows` of the batch: features as leaves, then a (DDP-wrapped) two-tower model."""
    u, v = data["u"][rows].clone().requires_grad_(), data["v"][rows].clone().requires_grad_()
    t = data["t"].clone().requires_grad_()
    extras = {"weights": data["w"][rows], "query_ids": data["qids"][rows], "valid": data["valid"][rows]}
    loss = GCLLoss()(u, v, t, **extras)
    loss.backward()

    torch.manual_seed(0)
    model = TwoTowers()
    wrapped = nn.parallel.DistributedDataParallel(model) if ddp else model
    model_loss = GCLLoss()(*wrapped(data["xq"][rows], data["xd"][rows]), **extras)
    model_loss.backward()
    out = {"loss": loss.detach(), "grad_u": u.grad, "grad_v": v.grad, "grad_t": t.grad}
    # Divided by the batch size: the global count of valid pairs, not this rank's.
    out["batch_loss"] = GCLLoss("batch")(data["u"][rows], data["v"][rows], data["t"], **extras)
    out["model_loss"] = model_loss.detach()
    out.update({f"param.{name}": p.grad for name, p in model.named_parameters()})
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    ctx = init_distributed("gloo", init_method=f"file://{init_file}", device="cpu")
    try:
        assert ctx.world_size == WORLD_SIZE and ctx.rank == rank
        share = BATCH // WORLD_SIZE
        out = compute(make_inputs(), slice(rank * share, (rank + 1) * share), ddp=True)
        gathered = gather_no_grad(torch.full((2,), rank, dtype=torch.int64))
        out["gathered_ranks"] = gathered
        out["gathered_bool"] = gather_no_grad(torch.tensor([rank == 0]))
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        cleanup_distributed()


@pytest.mark.slow  # 8-10 s on 2 shared cores: two spawned interpreters import torch
def test_two_gloo_processes_equal_one_process_on_the_doubled_batch(tmp_path: Path) -> None:
    # spawn, not fork: forking a process whose torch thread pools already ran can hang the children.
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    data = make_inputs()
    reference = compute(data, slice(None), ddp=False)
    share = BATCH // WORLD_SIZE
    for rank in range(WORLD_SIZE):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        rows = slice(rank * share, (rank + 1) * share)
        torch.testing.assert_close(got["loss"], reference["loss"])
        torch.testing.assert_close(got["model_loss"], reference["model_loss"])
        torch.testing.assert_close(got["batch_loss"], reference["batch_loss"])
        # Gradients on the rank's own inputs: world_size × the reference (all ranks' backward summed).
        torch.testing.assert_close(got["grad_u"] / WORLD_SIZE, reference["grad_u"][rows])
        torch.testing.assert_close(got["grad_v"] / WORLD_SIZE, reference["grad_v"][rows])
        torch.testing.assert_close(got["grad_t"], reference["grad_t"])  # not gathered: no factor
        # After DDP's averaging the parameter gradients are exactly the one-process ones.
        for name in ("text.weight", "text.bias", "image.weight", "image.bias", "log_scale"):
            torch.testing.assert_close(got[f"param.{name}"], reference[f"param.{name}"])
        assert got["gathered_ranks"].tolist() == [0, 0, 1, 1]
        assert got["gathered_bool"].tolist() == [True, False]


def test_world_size_one_is_the_same_code_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("gloo", device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x and gather_no_grad(x) is x


def test_context_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = DistributedContext.from_env(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        DistributedContext.from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 3 of 2
    with pytest.raises(ConfigError, match="invalid distributed context"):
        DistributedContext.from_env()
    with pytest.raises(ConfigError, match="unknown distributed backend"):
        init_distributed("mpi")
