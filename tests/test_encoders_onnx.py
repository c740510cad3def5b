"""ONNX bundle = torch model (the reference), and a damaged or mismatched bundle is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcl_vectordb.encoders import Encoder, ExportManifest, load_encoder
from gcl_vectordb.encoders.manifest import file_sha256
from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder
from gcl_vectordb.encoders.torch_encoder import TorchEncoder
from gcl_vectordb.errors import ModelError
from tests.encoder_fixtures import copy_bundle

TEXTS = ["red summer dress", "Men's leather boots — size 44", "", "striped " * 90, "日本語 ÆØÅ 😀"]


def images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    sizes = [(64, 64), (120, 80), (33, 200), (640, 480)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def max_cosine_deviation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(1.0 - np.sum(a.astype(np.float64) * b, axis=1)))


@pytest.fixture(scope="module")
def torch_encoder(tiny_model) -> TorchEncoder:
    return TorchEncoder(tiny_model, device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def onnx_encoder(tiny_bundle: Path) -> OnnxEncoder:
    return OnnxEncoder(tiny_bundle, device="cpu", batch_size=3)


@pytest.mark.parametrize("rows", [1, 4])
def test_onnx_matches_torch_on_both_towers(torch_encoder, onnx_encoder, rows: int) -> None:
    texts, pics = TEXTS[:rows], images()[:rows]
    for ours, reference in [
        (onnx_encoder.encode_texts(texts), torch_encoder.encode_texts(texts)),
        (onnx_encoder.encode_images(pics), torch_encoder.encode_images(pics)),
    ]:
        assert ours.shape == (rows, 128) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert max_cosine_deviation(ours, reference) < 1e-5
        np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_encoders_follow_the_protocol(torch_encoder, onnx_encoder, tiny_bundle: Path) -> None:
    for encoder in (torch_encoder, onnx_encoder):
        assert isinstance(encoder, Encoder)
        assert encoder.encode_texts([]).shape == (0, 128)
        assert encoder.encode_images([]).shape == (0, 128)
        assert encoder.encode_pixels(np.zeros((0, 3, 64, 64), np.float32)).shape == (0, 128)
        pixels = np.stack([encoder.preprocessor(im) for im in images()])
        np.testing.assert_allclose(encoder.encode_pixels(pixels), encoder.encode_images(images()), atol=1e-6)
        with pytest.raises(ModelError, match="pixels must have shape"):
            encoder.encode_pixels(np.zeros((1, 3, 32, 32), np.float32))
    info = onnx_encoder.describe()
    assert (info.backend, info.provider, info.variant, info.batch_size) == ("onnx", "CPUExecutionProvider", "fp32", 3)
    assert info.threads >= 1 and info.model_ref == str(tiny_bundle.resolve())
    assert torch_encoder.describe().backend == "torch" and torch_encoder.model_ref == "gcl-tiny"


def test_int8_variant_is_close_and_reported(tiny_bundle: Path, torch_encoder) -> None:
    int8 = load_encoder(str(tiny_bundle), variant="int8", batch_size=8)
    assert int8.describe().variant == "int8"
    assert max_cosine_deviation(int8.encode_texts(TEXTS), torch_encoder.encode_texts(TEXTS)) < 0.05
    manifest = ExportManifest.read(tiny_bundle)
    assert set(manifest.parity) == {"fp32", "int8"}
    assert manifest.parity["fp32"]["text"].max_cosine_deviation <= 1e-4
    assert manifest.parity["int8"]["image"].rows == 6


def test_load_encoder_picks_the_backend(tiny_bundle: Path) -> None:
    assert isinstance(load_encoder(str(tiny_bundle)), OnnxEncoder)
    assert isinstance(load_encoder("gcl-micro", device="cpu"), TorchEncoder)
    with pytest.raises(ModelError, match="export it first"):
        load_encoder("gcl-micro", backend="onnx")
    with pytest.raises(ModelError, match="cannot run on the torch backend"):
        load_encoder(str(tiny_bundle), backend="torch")
    with pytest.raises(ModelError, match="no 'fp16' variant"):
        load_encoder(str(tiny_bundle), variant="fp16")


def test_manifest_json_round_trip(tiny_bundle: Path, tmp_path: Path) -> None:
    manifest = ExportManifest.read(tiny_bundle)
    assert ExportManifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    manifest.write(tmp_path)
    assert ExportManifest.read(tmp_path) == manifest
    assert (manifest.architecture, manifest.embed_dim, manifest.image_size, manifest.context_length) == (
        "gcl-tiny", 128, 64, 77)
    assert manifest.tokenizer.vocab_file in {p.name for p in tiny_bundle.iterdir()}
    assert len(manifest.source.weights_sha256) == 64 and manifest.source.model_ref == "gcl-tiny"


def _edit_manifest(bundle: Path, edit) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    edit(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_truncated_or_edited_tower_fails_the_hash_check(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    data = (bundle / "image.onnx").read_bytes()
    (bundle / "image.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="image.onnx does not match its sha256"):
        OnnxEncoder(bundle)
    (bundle / "image.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelError, match="does not match its sha256"):
        OnnxEncoder(bundle)


def test_truncated_tower_with_matching_hash_is_still_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    data = (bundle / "text.onnx").read_bytes()
    (bundle / "text.onnx").write_bytes(data[: len(data) // 3])
    _edit_manifest(bundle, lambda m: m["variants"]["fp32"].update(text_sha256=file_sha256(bundle / "text.onnx")))
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxEncoder(bundle)


def test_missing_file_and_wrong_hash_are_clear_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    _edit_manifest(bundle, lambda m: m["tokenizer"].update(vocab_sha256="0" * 64))
    with pytest.raises(ModelError, match="bpe_simple_vocab_16e6.txt.gz does not match its sha256"):
        OnnxEncoder(bundle)
    (bundle / "text.int8.onnx").unlink()
    with pytest.raises(ModelError, match="missing text.int8.onnx"):
        OnnxEncoder(bundle, variant="int8")
    (bundle / "manifest.json").unlink()
    with pytest.raises(ModelError, match="not a model folder"):
        load_encoder(str(bundle))


def test_tower_from_another_model_is_a_dim_mismatch(tiny_bundle: Path, micro_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (bundle / "text.onnx").write_bytes((micro_bundle / "text.onnx").read_bytes())
    _edit_manifest(bundle, lambda m: m["variants"]["fp32"].update(text_sha256=file_sha256(bundle / "text.onnx")))
    with pytest.raises(ModelError, match="text.onnx outputs 32-d embeddings but the manifest says 128"):
        OnnxEncoder(bundle)
    bundle = copy_bundle(micro_bundle, tmp_path / "other")
    (bundle / "image.onnx").write_bytes((tiny_bundle / "image.onnx").read_bytes())
    with pytest.raises(ModelError, match="image.onnx takes inputs of shape"):
        OnnxEncoder(bundle, verify=False)


def test_malformed_manifest_is_a_clear_error(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    _edit_manifest(bundle, lambda m: m.update(format_version=99))
    with pytest.raises(ModelError, match="format version 99 is not supported"):
        OnnxEncoder(bundle)
    _edit_manifest(bundle, lambda m: (m.update(format_version=1), m.pop("embed_dim")))
    with pytest.raises(ModelError, match="incomplete or malformed"):
        OnnxEncoder(bundle)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        OnnxEncoder(bundle)


def test_onnx_path_never_imports_torch(tiny_bundle: Path, subprocess_env) -> None:
    code = (
        "import sys\nfrom gcl_vectordb.encoders import load_encoder\n"
        f"e = load_encoder({str(tiny_bundle)!r})\n"
        "from PIL import Image\n"
        "print(e.encode_texts(['red dress']).shape, e.encode_images([Image.new('RGB', (80, 60))]).shape)\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["(1, 128) (1, 128)", "[]"]
