"""The CUDA paths (bf16 autocast in the torch encoder and in training). They run where a GPU is present
and skip with the reason elsewhere; CI machines have none, the `gpu` marker selects them on one that does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gcl_vectordb.encoders.models import create_clip_model
from gcl_vectordb.encoders.torch_encoder import TorchEncoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present here"),
]


def test_bf16_autocast_encoder_matches_fp32_on_the_cpu() -> None:
    texts = ["red summer dress", "striped shirt", "leather bag"]
    pixels = np.random.default_rng(0).normal(size=(4, 3, 64, 64)).astype(np.float32)
    cpu = TorchEncoder(create_clip_model("gcl-tiny"), device="cpu")
    gpu = TorchEncoder(create_clip_model("gcl-tiny"), device="cuda")
    assert gpu.describe().variant in ("bf16", "fp16")
    for ours, reference in ((gpu.encode_texts(texts), cpu.encode_texts(texts)),
                            (gpu.encode_pixels(pixels), cpu.encode_pixels(pixels))):
        cosine = (ours * reference).sum(axis=1)
        assert ours.dtype == np.float32 and cosine.min() > 0.99


def test_two_step_bf16_training_on_cuda(tiny_gs: Path, tmp_path: Path) -> None:
    from trainer.config import load_config
    from trainer.recipe import run_training

    config = load_config(updates={"out": tmp_path / "run", "data.root": tiny_gs},
                         overrides=["model.name=gcl-micro", "batch_size=4", "max_steps=2", "precision=bf16"])
    result = run_training(config)
    assert result.steps == 2 and result.final_loss is not None and np.isfinite(result.final_loss)
