"""`gcl-vdb export` end to end: the bundle it writes embeds like the torch model it came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from exporters import ExportConfig, ExportError, export_bundle
from gcl_vectordb.cli.app import app
from gcl_vectordb.encoders import ExportManifest, load_encoder
from gcl_vectordb.encoders.checkpoints import save_checkpoint_folder
from gcl_vectordb.encoders.manifest import Parity
from gcl_vectordb.encoders.models import weights_sha256
from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder
from gcl_vectordb.encoders.torch_encoder import TorchEncoder
from gcl_vectordb.errors import ConfigError

runner = CliRunner()
PICTURES = [Image.new("RGB", (90, 60), "red"), Image.new("RGB", (40, 70), (20, 200, 90))]


def test_cli_export_then_onnx_encoder_embeds_text_and_images(micro_model, tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = runner.invoke(app, ["export", "--model", "gcl-micro", "--out", str(out), "--int8", "--fp16"])
    assert result.exit_code == 0, result.output
    for needle in ("gcl-micro", "text.int8.onnx", "image.fp16.onnx", "max 1−cos vs torch"):
        assert needle in result.output
    reference = TorchEncoder(micro_model, device="cpu")
    for variant, tolerance in (("fp32", 1e-5), ("int8", 0.05), ("fp16", 1e-3)):
        encoder = OnnxEncoder(out, variant=variant)
        texts = encoder.encode_texts(["red dress", "green shoes"])
        pics = encoder.encode_images(PICTURES)
        assert texts.shape == pics.shape == (2, 32)
        assert np.max(1 - np.sum(texts * reference.encode_texts(["red dress", "green shoes"]), axis=1)) < tolerance
        assert np.max(1 - np.sum(pics * reference.encode_images(PICTURES), axis=1)) < tolerance
    manifest = ExportManifest.read(out)
    assert set(manifest.variants) == {"fp32", "int8", "fp16"} and manifest.opset == 18


def test_cli_export_of_a_checkpoint_records_its_source(micro_model, tmp_path: Path) -> None:
    folder = save_checkpoint_folder(micro_model.model, "gcl-micro", tmp_path / "run" / "ckpt", step=3)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"checkpoint": "ckpt"}))
    result = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["source"] == {"model_ref": str(folder.resolve()), "weights_sha256": weights_sha256(micro_model.model)}
    assert manifest["architecture"] == "gcl-micro" and manifest["parity"]["fp32"]["text"]["rows"] == 6


def test_weights_file_export_needs_the_architecture(micro_model, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file(micro_model.model.state_dict(), str(weights))
    result = runner.invoke(app, ["export", "--checkpoint", str(weights), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and "pass it as ARCH:" in result.output
    result = runner.invoke(app, ["export", "--checkpoint", str(weights), "--model", "gcl-micro", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert ExportManifest.read(tmp_path / "b").source.model_ref == f"gcl-micro:{weights.resolve()}"


def test_usage_errors(tmp_path: Path) -> None:
    assert runner.invoke(app, ["export", "--out", str(tmp_path / "m")]).exit_code == 2
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export", "--model", "gcl-micro", "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1 and "is not an ONNX bundle" in result.output
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="not both"):
        ExportConfig(out=tmp_path, model_ref="gcl-micro", checkpoint=tmp_path)


def test_parity_failure_fails_loudly_and_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = {"text": Parity(3e-3, 0.1, 6), "image": Parity(1e-7, 1e-6, 6)}
    monkeypatch.setattr("exporters.bundle.tower_parity", lambda *a, **k: bad)
    with pytest.raises(ExportError, match=r"text tower disagrees with torch: max cosine deviation 3.00e-03 > 1e-04"):
        export_bundle(ExportConfig(out=tmp_path / "m", model_ref="gcl-micro"))
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its scratch folder is left behind


def test_reexport_replaces_an_existing_bundle(micro_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    export_bundle(ExportConfig(out=out, model_ref="gcl-micro"))
    first = ExportManifest.read(out)
    manifest = export_bundle(ExportConfig(out=out, model_ref="gcl-micro"))
    assert manifest.source == first.source == ExportManifest.read(micro_bundle).source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_bundle_and_the_model_it_was_exported_from_share_one_identity(micro_bundle: Path, tiny_bundle: Path) -> None:

    bundle = load_encoder(str(micro_bundle), towers=("text",))
    source = TorchEncoder.from_ref("gcl-micro")
    assert bundle.identity.same_model(source.identity)
    assert bundle.identity.model_ref != source.identity.model_ref  # where it came from is not identity
    assert bundle.identity.preprocessing.image_size == 32 and bundle.identity.dim == 32
    assert not bundle.identity.same_model(load_encoder(str(tiny_bundle), towers=("text",)).identity)


def test_the_text_tower_takes_rows_cut_after_the_end_of_text_token(micro_model, micro_bundle: Path,
                                                                     tmp_path: Path) -> None:
    """The exported text tower has a dynamic length axis; cut rows embed as the full context does."""
    manifest = ExportManifest.read(micro_bundle)
    assert manifest.dynamic_text_length
    length_axis = onnx.load(str(micro_bundle / "text.onnx")).graph.input[0].type.tensor_type.shape.dim[1]
    assert length_axis.dim_param and not length_axis.dim_value  # symbolic, not 77
    texts = ["red dress", "a long striped cotton summer shirt with buttons and a collar", "", "bag " * 40]
    encoder = load_encoder(str(micro_bundle), towers=("text",))
    with torch.inference_mode():
        full = micro_model.model.encode_text(torch.from_numpy(encoder.tokenize(texts)), normalize=True).numpy()
    np.testing.assert_allclose(encoder.encode_texts(texts), full, atol=1e-6)
    # A bundle from before the flag existed runs its rows at the full context length.
    old = Path(shutil.copytree(micro_bundle, tmp_path / "old"))
    data = json.loads((old / "manifest.json").read_text())
    del data["dynamic_text_length"]
    (old / "manifest.json").write_text(json.dumps(data))
    np.testing.assert_allclose(load_encoder(str(old), towers=("text",)).encode_texts(texts), full, atol=1e-6)


def test_below_opset_18_the_text_tower_keeps_the_full_context(micro_model, tmp_path: Path) -> None:
    manifest = export_bundle(ExportConfig(out=tmp_path / "m17", model_ref="gcl-micro", opset=17))
    assert manifest.opset == 17 and not manifest.dynamic_text_length
    texts = ["red dress", "green shoes with laces"]
    encoder = load_encoder(str(tmp_path / "m17"), towers=("text",))
    with torch.inference_mode():
        full = micro_model.model.encode_text(torch.from_numpy(encoder.tokenize(texts)), normalize=True).numpy()
    np.testing.assert_allclose(encoder.encode_texts(texts), full, atol=1e-6)
