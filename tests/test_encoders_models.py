"""Model references: every form resolves, round-trips through its canonical string, and loads the same
weights in another process; network forms fail with a message that says how to pass a local file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from gcl_vectordb.encoders import resolve_model_ref
from gcl_vectordb.encoders.checkpoints import save_checkpoint_folder
from gcl_vectordb.encoders.models import create_clip_model, load_checkpoint_folder, weights_sha256
from gcl_vectordb.errors import ModelError


def test_seeded_random_init_is_identical_in_another_process(micro_model, subprocess_env) -> None:
    code = "from gcl_vectordb.encoders.models import *; print(weights_sha256(create_clip_model('gcl-micro').model))"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == weights_sha256(micro_model.model)


def test_random_init_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    create_clip_model("gcl-micro")
    assert torch.equal(torch.random.get_rng_state(), state)


def test_architecture_forms_and_canonical_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model_ref("gcl-tiny").kind == "arch"
    assert resolve_model_ref("ViT-B-32").kind == "arch"
    tag = resolve_model_ref("ViT-B-32:laion2b_s34b_b79k")
    assert (tag.kind, tag.architecture, tag.tag) == ("tag", "ViT-B-32", "laion2b_s34b_b79k")
    assert resolve_model_ref("hf-hub:laion/CLIP-ViT-B-32").kind == "hf-hub"
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    local = resolve_model_ref("gcl-micro:./w.safetensors")
    assert (local.kind, local.path) == ("file", weights.resolve())
    assert local.ref == f"gcl-micro:{weights.resolve()}"
    for ref in ["gcl-tiny", "ViT-B-32:laion2b_s34b_b79k", "hf-hub:laion/CLIP-ViT-B-32", local.ref]:
        assert resolve_model_ref(resolve_model_ref(ref).ref) == resolve_model_ref(ref)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no-such-arch", "unknown model reference"),
        ("NoSuchArch:laion2b", "unknown architecture 'NoSuchArch'"),
        ("gcl-micro:/no/such/weights.safetensors", "weights file not found"),
        ("./no/such/folder", "no such model folder"),
        ("hf-hub:just-a-name", "write it as hf-hub:org/repo"),
    ],
)
def test_bad_references_are_clear_errors(ref: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_model_ref(ref)


def test_weights_file_without_architecture_says_how_to_pass_it(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ModelError, match="pass it as ARCH:"):
        resolve_model_ref(str(weights))


def _perturbed_state(micro_model) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone()
            for k, v in micro_model.model.state_dict().items()}


def test_local_safetensors_and_pt_weights_load(micro_model, tmp_path: Path) -> None:
    state = _perturbed_state(micro_model)
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    expected = create_clip_model("gcl-micro")
    expected.model.load_state_dict(state)
    for name in ("w.safetensors", "w.pt"):
        loaded = create_clip_model(f"gcl-micro:{tmp_path / name}")
        assert weights_sha256(loaded.model) == weights_sha256(expected.model) != weights_sha256(micro_model.model)


class _NotAWeight:
    pass


def test_pt_file_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    torch.save({"payload": _NotAWeight()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="cannot load weights"):
        create_clip_model(f"gcl-micro:{tmp_path / 'evil.pt'}")


def test_weights_of_another_architecture_are_refused(tiny_model, tmp_path: Path) -> None:
    save_file(tiny_model.model.state_dict(), str(tmp_path / "tiny.safetensors"))
    with pytest.raises(ModelError, match="cannot load weights"):
        create_clip_model(f"gcl-micro:{tmp_path / 'tiny.safetensors'}")


def test_checkpoint_and_run_folders_round_trip(micro_model, tmp_path: Path) -> None:
    model = create_clip_model("gcl-micro").model
    model.load_state_dict(_perturbed_state(micro_model))
    folder = save_checkpoint_folder(model, "gcl-micro", tmp_path / "run" / "checkpoints" / "step-5", step=5, lr=1e-4)
    meta = json.loads((folder / "model.json").read_text())
    assert meta["architecture"] == "gcl-micro" and meta["step"] == 5 and meta["lr"] == 1e-4
    assert meta["model_config"] == open_clip.get_model_config("gcl-micro")
    loaded = load_checkpoint_folder(folder)
    assert weights_sha256(loaded.model) == weights_sha256(model)
    assert (loaded.architecture, loaded.embed_dim, loaded.image_size) == ("gcl-micro", 32, 32)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"checkpoint": "checkpoints/step-5"}))
    for ref in (folder, tmp_path / "run"):
        source = resolve_model_ref(str(ref))
        assert (source.kind, source.ref) == ("checkpoint", str(folder.resolve()))
    assert weights_sha256(create_clip_model(str(tmp_path / "run")).model) == weights_sha256(model)


def test_damaged_checkpoint_folder_is_a_clear_error(micro_model, tmp_path: Path) -> None:
    folder = save_checkpoint_folder(micro_model.model, "gcl-micro", tmp_path / "ckpt")
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load"):
        load_checkpoint_folder(folder)
    (folder / "model.json").write_text("{}")
    with pytest.raises(ModelError, match="lacks 'architecture'"):
        resolve_model_ref(str(folder))


def test_pretrained_tag_offline_says_how_to_pass_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", offline)
    with pytest.raises(ModelError) as info:
        create_clip_model("ViT-B-32:laion2b_s34b_b79k")
    message = str(info.value)
    assert "could not be fetched (offline?" in message
    assert "ViT-B-32:/path/to/weights.safetensors" in message


def test_hf_hub_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("We have no connection or you passed local_files_only")

    monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf", offline)
    with pytest.raises(ModelError, match="hf-hub:laion/CLIP-ViT-B-32 could not be fetched"):
        create_clip_model("hf-hub:laion/CLIP-ViT-B-32")


def test_unknown_tag_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="known tags: .*laion2b_s34b_b79k"):
        create_clip_model("ViT-B-32:no_such_tag")
