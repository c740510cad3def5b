"""The training recipe on gcl-micro + tiny_gs: pinned losses, resume, Ctrl-C, checkpoints, export, evaluation."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gcl_vectordb.data import RejectLog
from gcl_vectordb.encoders import fused_document_vector, load_encoder
from gcl_vectordb.errors import ConfigError
from tests.metric_reference import err_reference, trec_sorted
from trainer.checkpointing import TRAIN_STATE_FILE, RunFolder, load_train_state
from trainer.config import TrainConfig, load_config
from trainer.optim import lr_factor
from trainer.pairs import load_training_data
from trainer.recipe import GCLRecipe, run_training


def micro_config(root: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(updates={"out": out, "data.root": root}, overrides=[
        "model.name=gcl-micro", "batch_size=4", "log_every=1", "optim.warmup_steps=2", "eval.batch_size=64",
        *overrides,
    ])


def train_lines(run_dir: Path) -> list[dict]:
    return [line for line in RunFolder(run_dir).read_metrics() if line["type"] == "train"]


def test_two_step_smoke_run_pins_its_losses(tiny_gs: Path, tmp_path: Path) -> None:
    result = run_training(micro_config(tiny_gs, tmp_path / "run", "max_steps=2"))
    lines = train_lines(tmp_path / "run")
    # Pinned for seed 0, gcl-micro's seeded init and tiny_gs: any change in data order, weights, loss,
    # initialisation or schedule shows up here.
    assert [line["step"] for line in lines] == [1, 2]
    assert [line["loss"] for line in lines] == pytest.approx([3.2527964115142822, 2.430004596710205], abs=1e-5)
    assert [line["lr"] for line in lines] == pytest.approx([2.5e-4, 5e-4])
    assert all(np.isfinite(line["grad_norm"]) for line in lines)
    assert lines[0]["logit_scale"] == pytest.approx(50.0, rel=1e-3)  # loss.logit_scale_init on a random init
    assert (result.steps, result.total_steps, result.interrupted) == (2, 2, False)
    assert result.checkpoint == tmp_path / "run" / "checkpoints" / "step-0000002"
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["checkpoint"] == "checkpoints/step-0000002"
    assert record["config"]["model"]["name"] == "gcl-micro" and record["versions"]["torch"] == torch.__version__
    assert record["data"]["train_pairs"] == result.data.train_pairs > 0
    assert record["eval_before"] is not None and record["eval"] == result.eval_after
    state = torch.load(result.checkpoint / TRAIN_STATE_FILE, weights_only=True)  # plain tensors and values
    assert state["state"]["step"] == 2 and state["scheduler"]["last_epoch"] == 2


@pytest.mark.slow  # three short training runs: 3 s on a quiet machine, over 10 s on a busy one
def test_resume_continues_steps_schedule_and_data(tiny_gs: Path, tmp_path: Path) -> None:
    overrides = ("epochs=2", "eval.every_epoch=false", "eval.before_training=false")
    straight = run_training(micro_config(tiny_gs, tmp_path / "straight", *overrides))
    assert straight.total_steps > 10  # two epochs: the resumed run crosses an epoch boundary

    recipe = GCLRecipe(micro_config(tiny_gs, tmp_path / "resumed", *overrides))
    step = recipe.train_step

    def stop_after_four(batches):  # Ctrl-C after step 4: the handler only sets the flag
        metrics = step(batches)
        if metrics.step == 4:
            recipe.stop._handle(signal.SIGINT, None)
        return metrics

    recipe.train_step = stop_after_four
    try:
        recipe.setup()
        first = recipe.train()
    finally:
        recipe.cleanup()
    assert first.interrupted and first.steps == 4
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["status"] == "interrupted"
    second = run_training(micro_config(tiny_gs, tmp_path / "resumed", *overrides), resume=True)
    assert not second.interrupted and second.steps == straight.steps == straight.total_steps

    a, b = train_lines(tmp_path / "straight"), train_lines(tmp_path / "resumed")
    assert [x["step"] for x in a] == [x["step"] for x in b] == list(range(1, straight.steps + 1))
    assert [x["lr"] for x in a] == pytest.approx([x["lr"] for x in b], rel=1e-12)
    assert [x["epoch"] for x in a] == [x["epoch"] for x in b]
    assert [x["loss"] for x in a] == pytest.approx([x["loss"] for x in b], abs=1e-5)
    factor = lr_factor(micro_config(tiny_gs, tmp_path).optim, straight.total_steps)
    assert [x["lr"] for x in a] == pytest.approx([5e-4 * factor(s) for s in range(straight.steps)])
    weights_a = load_file(str(straight.checkpoint / "model.safetensors"))
    weights_b = load_file(str(second.checkpoint / "model.safetensors"))
    for name, tensor in weights_a.items():
        torch.testing.assert_close(weights_b[name], tensor, atol=1e-5, rtol=1e-4)


def test_run_folder_guards(tiny_gs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to resume"):
        run_training(micro_config(tiny_gs, tmp_path / "empty"), resume=True)
    run_training(micro_config(tiny_gs, tmp_path / "run", "max_steps=1", "eval.holdout_fraction=0"))
    with pytest.raises(ConfigError, match="already holds a training run"):
        run_training(micro_config(tiny_gs, tmp_path / "run", "max_steps=1"))
    with pytest.raises(ConfigError, match="no full step"):
        run_training(micro_config(tiny_gs, tmp_path / "big", "batch_size=64"))
    with pytest.raises(ConfigError, match="no run folder"):
        GCLRecipe(TrainConfig())


def test_checkpoint_loads_exports_and_the_eval_hook_matches_a_recomputation(tiny_gs: Path, tmp_path: Path) -> None:
    from exporters import ExportConfig, export_bundle

    run_dir = tmp_path / "run"
    config = micro_config(tiny_gs, run_dir, "max_steps=3", "eval.before_training=false")
    result = run_training(config)
    encoder = load_encoder(str(run_dir), backend="torch", device="cpu")  # run.json → latest checkpoint
    assert encoder.model_ref == str(result.checkpoint.resolve())

    # The evaluation hook against an independent recomputation: the torch encoder on the full text
    # context, numpy fusion and brute force, and reference metrics.
    data = load_training_data(config.data, config.eval, config.loss.weight_transform(), seed=config.seed,
                              rejects=RejectLog())
    eval_set = data.eval_set
    products = eval_set.products
    images = encoder.encode_pixels(_pixels(encoder, products))
    titles = encoder.encode_texts([p.title for p in products])
    present = {"image": np.ones(len(products), bool), "title": np.ones(len(products), bool)}
    documents = fused_document_vector({"image": images, "title": titles}, present, config.loss.field_weights)
    queries = encoder.encode_texts(list(eval_set.queries))
    ndcg, err = [], []
    for query, vector in zip(eval_set.queries, queries, strict=True):
        ranked = trec_sorted([(p.product_id, float(s)) for p, s in zip(products, documents @ vector, strict=True)])
        judged = eval_set.qrels[query]
        gains = [judged.get(pid, 0) for pid in ranked]
        ideal = sorted(judged.values(), reverse=True)
        dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains[:10]))
        ndcg.append(dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal[:10])))
        err.append(err_reference(gains, max(judged.values())))
    logged = [line for line in RunFolder(run_dir).read_metrics() if line["type"] == "eval"][-1]
    assert logged["step"] == 3 and logged["queries"] == len(eval_set.queries)
    assert logged["ndcg@10"] == pytest.approx(float(np.mean(ndcg)), abs=1e-6)
    assert logged["err"] == pytest.approx(float(np.mean(err)), abs=1e-6)

    # The checkpoint exports; the ONNX towers reproduce the trained torch model.
    bundle = tmp_path / "bundle"
    export_bundle(ExportConfig(out=bundle, checkpoint=run_dir))
    onnx = load_encoder(str(bundle))
    texts = ["red summer dress", "striped shirt"]
    np.testing.assert_allclose(onnx.encode_texts(texts), encoder.encode_texts(texts), atol=1e-5)
    pixels = _pixels(encoder, products[:3])
    np.testing.assert_allclose(onnx.encode_pixels(pixels), encoder.encode_pixels(pixels), atol=1e-5)
    state = load_train_state(result.checkpoint)
    assert state["state"].step == 3 and state["world_size"] == 1


def _pixels(encoder, products) -> np.ndarray:
    return np.stack([encoder.preprocessor.from_bytes(p.read_image_bytes()) for p in products])


def test_fine_tuning_a_checkpoint_keeps_its_logit_scale(tiny_gs: Path, tmp_path: Path) -> None:
    first = run_training(micro_config(tiny_gs, tmp_path / "first", "max_steps=1", "eval.holdout_fraction=0",
                                      "loss.logit_scale_init=40"))
    second = run_training(micro_config(tiny_gs, tmp_path / "second", "max_steps=1", "eval.holdout_fraction=0",
                                       f"model.name={first.run_dir}", "loss.logit_scale_init=10"))
    started, continued = train_lines(first.run_dir)[0], train_lines(second.run_dir)[0]
    assert started["logit_scale"] == pytest.approx(40.0, rel=1e-3)
    assert continued["logit_scale"] == pytest.approx(started["logit_scale"], rel=1e-3)  # not reset to 10
    meta = json.loads((second.checkpoint / "model.json").read_text())
    assert meta["architecture"] == "gcl-micro" and meta["step"] == 1
    assert meta["source"] == str(first.checkpoint.resolve())  # the exact weights it started from


@pytest.mark.slow  # four 3-step runs of gcl-micro
def test_loss_normalisation_is_masked_when_every_step_is_clipped(tiny_gs: Path, tmp_path: Path) -> None:
    """Dividing the weighted loss by N instead of Σw scales each batch's gradient by Σw/N > 0; clipping to
    a norm every step reaches removes that scale, so both normalisations train the same model (what the
    weight study measured, benchmarks/gcl_grad_clip.py). Without clipping they differ."""
    def params(name: str, clip: str, norm: str) -> dict[str, torch.Tensor]:
        result = run_training(micro_config(tiny_gs, tmp_path / name, "max_steps=3", "eval.every_epoch=false",
                                           "eval.before_training=false", "loss.weights=linear",
                                           f"optim.grad_clip={clip}", f"loss.normalize={norm}"))
        lines = train_lines(tmp_path / name)
        assert clip == "None" or all(line["grad_norm"] > float(clip) for line in lines)  # every step clipped
        return load_file(str(result.checkpoint / "model.safetensors"))

    def largest_difference(a: dict, b: dict) -> float:
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    clipped = largest_difference(params("c-sum", "1e-3", "sum_w"), params("c-batch", "1e-3", "batch"))
    free = largest_difference(params("f-sum", "None", "sum_w"), params("f-batch", "None", "batch"))
    assert clipped < 1e-6 < free
