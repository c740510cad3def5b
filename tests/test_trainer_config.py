"""TrainConfig: file loading, CLI overrides (ast.literal_eval, never eval), validation with clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.errors import ConfigError
from trainer.config import TrainConfig, apply_overrides, load_config, parse_override
from trainer.losses.multifield import MultiFieldGCLLoss

TOML = """
out = "runs/demo"
epochs = 2

[data]
root = "gs"
workers = 1

[optim]
lr = 1e-3
betas = [0.9, 0.95]

[loss]
weights = "power"
weight_params = { gamma = 3.0 }
terms = [["query", "fused", 1.0], ["query", "image", 0.5]]
"""


def test_defaults_use_the_encoders_field_weights() -> None:
    config = TrainConfig()
    assert config.loss.field_weights is DEFAULT_FIELD_WEIGHTS == FieldWeights(image=0.9, title=0.1)
    assert MultiFieldGCLLoss().field_weights is DEFAULT_FIELD_WEIGHTS  # the loss has no default of its own
    assert config.loss.weight_transform().name == "linear"


def test_toml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text(TOML)
    config = load_config(path, updates={"batch_size": 32, "model.name": None},
                         overrides=["optim.lr=2e-4", "loss.weight_params.gamma=2", "data.max_pairs=1e3"])
    assert config.out == Path("runs/demo") and config.data.root == Path("gs") and config.data.workers == 1
    assert config.epochs == 2 and config.batch_size == 32 and config.model.name == "gcl-tiny"
    assert config.optim.lr == 2e-4 and config.optim.betas == (0.9, 0.95)
    assert config.loss.weight_params == {"gamma": 2.0}
    assert config.loss.weight_transform().gamma == 2.0
    assert config.loss.terms == (("query", "fused", 1.0), ("query", "image", 0.5))
    assert config.data.max_pairs == 1000 and isinstance(config.data.max_pairs, int)
    assert TrainConfig.from_dict(config.to_dict()) == config  # the plain form round-trips


def test_yaml_file_when_pyyaml_is_installed(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 4\noptim:\n  warmup_steps: 7\n")
    if importlib.util.find_spec("yaml") is None:
        with pytest.raises(ConfigError, match="needs pyyaml"):
            load_config(path)
    else:
        config = load_config(path)
        assert (config.epochs, config.optim.warmup_steps) == (4, 7)


def test_text_and_path_fields_take_the_raw_text() -> None:
    config = load_config(overrides=["out=runs/1e3", "model.pretrained=1e3", "data.root=~/gs"])
    assert config.out == Path("runs/1e3")
    assert config.model.pretrained == "1e3" and config.model.ref == "gcl-tiny:1e3"
    assert config.data.root == Path("~/gs").expanduser()
    assert load_config(overrides=["model.pretrained=None"]).model.pretrained is None


def test_loss_clip_preset_is_binary_weights() -> None:
    config = load_config(overrides=["loss.kind=clip"])
    assert config.loss.weight_transform().name == "binary"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("optim.lrr=1", r"unknown setting optim\.lrr — valid keys in optim: lr, weight_decay"),
        ("trainer.epochs=1", r"unknown setting trainer"),
        ("epochs.count=1", r"epochs is a single setting"),
        ("epochs=two", r"epochs must be an integer, got 'two'"),
        ("optim.lr=[1]", r"optim\.lr must be a number"),
        ("eval.every_epoch=1", r"must be true or false"),
        ("loss.kind=focal", r"loss\.kind must be one of 'gcl', 'clip'"),
        ("optim.betas=(0.9,)", r"optim\.betas needs 2 values"),
        ("noequals", r"bad override"),
        ("loss.weights=cubic", r"unknown weight transform 'cubic'"),
        ("loss.weight_params.tau=2", r"has no parameter tau"),
        ("loss.terms=[('query', 'price', 1.0)]", r"unknown loss field"),
        ("optim.lr=-1", r"optim\.lr must be a positive number"),
        ("batch_size=1", r"batch_size must be ≥ 2"),
        ("data.split=train", r"unknown split"),
    ],
)
def test_bad_overrides_are_config_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=[override])


def test_override_values_are_literals_never_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path, value, raw = parse_override(f"data.root={payload}")
    assert value == raw == payload  # literal_eval refused it: kept as text, never run
    with pytest.raises(ConfigError, match="optim.lr must be a number"):
        load_config(overrides=[f"optim.lr={payload}"])
    config = load_config(overrides=[f"data.root={payload}"])
    assert str(config.data.root) == payload and not marker.exists()
    assert parse_override("optim.betas=(0.8, 0.9)")[1] == (0.8, 0.9)


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[optim]\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) optim\.learning_rate"):
        load_config(unknown)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_apply_overrides_leaves_the_input_alone() -> None:
    values = TrainConfig().to_dict()
    changed = apply_overrides(values, ["optim.lr=0.5"])
    assert changed["optim"]["lr"] == 0.5 and values["optim"]["lr"] == TrainConfig().optim.lr


def test_weight_floor_and_normalisation_settings() -> None:
    config = load_config(overrides=["loss.weights=reciprocal", "loss.weight_floor=0.25", "loss.normalize=batch"])
    transform = config.loss.weight_transform()
    assert transform.name == "reciprocal" and transform.weight_floor == 0.25
    assert config.loss.normalize == "batch"
    assert TrainConfig().loss.weight_floor == 0.0 and TrainConfig().loss.normalize == "sum_w"
    clip = load_config(overrides=["loss.kind=clip", "loss.weight_floor=0.5"]).loss.weight_transform()
    assert clip.name == "binary"  # the baseline stays w = 1
    with pytest.raises(ConfigError, match="weight floor"):
        load_config(overrides=["loss.weight_floor=2"])
    with pytest.raises(ConfigError, match="loss.normalize must be one of"):
        load_config(overrides=["loss.normalize=mean"])


CAPTIONS = ["data.pairs=captions", "loss.kind=clip", "eval.holdout_fraction=0"]


def test_caption_pairs_settings_are_checked() -> None:
    config = load_config(overrides=CAPTIONS)
    assert config.data.pairs == "captions" and config.data.caption_field == "caption"
    for bad, match in [("loss.kind=gcl", "no grades"), ("eval.holdout_fraction=0.2", "no queries to hold out")]:
        with pytest.raises(ConfigError, match=match):
            load_config(overrides=[*CAPTIONS, bad])
