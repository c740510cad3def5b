"""The domain types, defined once: field weights, search modes, model identity — and atomic files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gcl_vectordb.domain import (
    DEFAULT_FIELD_WEIGHTS,
    FieldWeights,
    ModelIdentity,
    Preprocessing,
    SearchMode,
    parse_pairs,
)
from gcl_vectordb.errors import ConfigError, ModelMismatch
from gcl_vectordb.files import atomic_output, write_json_atomic


def test_field_weights_parse_and_mapping_share_one_rule() -> None:
    assert FieldWeights.parse("image=0.7, title=0.3") == FieldWeights(image=0.7, title=0.3)
    assert FieldWeights.parse("title=1") == FieldWeights(image=0.0, title=1.0)  # a field left out weighs 0
    assert FieldWeights.from_mapping({"image": 2}) == FieldWeights(image=2.0, title=0.0)
    assert str(DEFAULT_FIELD_WEIGHTS) == "image=0.9,title=0.1"
    assert FieldWeights(image=0.0, title=0.5).positive() == {"title": 0.5}
    assert FieldWeights.parse(str(DEFAULT_FIELD_WEIGHTS)) == DEFAULT_FIELD_WEIGHTS


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("image=0,title=0", "at least one field weight must be positive"),
        ("image=-1,title=1", "finite and ≥ 0"),
        ("image=nan", "finite and ≥ 0"),
        ("image=inf", "finite and ≥ 0"),
        ("colour=1", "unknown field"),
        ("image=abc", "not a number"),
        ("image", "expected key=value"),
        ("image=1,image=2", "given twice"),
        ("=1", "expected key=value"),
    ],
)
def test_bad_field_weights_are_config_errors_naming_the_source(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        FieldWeights.parse(text, "--fields")
    assert "--fields" in str(caught.value) or "positive" in str(caught.value) or "≥ 0" in str(caught.value)


def test_field_weights_refuse_non_numbers() -> None:
    with pytest.raises(ConfigError, match="not a number"):
        FieldWeights(image=True, title=0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a number"):
        FieldWeights.from_mapping({"image": "0.5"})


def test_parse_pairs_keeps_order_and_strips_spaces() -> None:
    assert parse_pairs(" a = 1 ,b=x y", "--filter") == {"a": "1", "b": "x y"}


def test_search_mode_parse() -> None:
    assert SearchMode.parse("rrf") is SearchMode.rrf
    assert SearchMode.parse(SearchMode.title) is SearchMode.title
    with pytest.raises(ConfigError, match="unknown search mode 'nearest'.*fused, image, title, rrf, weighted"):
        SearchMode.parse("nearest")


def _identity(sha: str = "ab" * 32, dim: int = 32, size: int = 32, ref: str = "model") -> ModelIdentity:
    pre = Preprocessing(size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bicubic", "shortest", 0, 77)
    return ModelIdentity(ref, sha, dim, pre)


def test_model_identity_ignores_where_the_model_came_from_but_not_its_weights() -> None:
    built = _identity(ref="runs/gcl")
    built.require_same(_identity(ref="model-bundle"), "gs")  # the export of the same weights
    assert ModelIdentity.from_dict(built.to_dict()) == built
    with pytest.raises(ModelMismatch, match=r"other weights .* collection 'gs'.*runs/gcl \(weights abab"):
        built.require_same(_identity(sha="cd" * 32, ref="other"), "gs")
    with pytest.raises(ModelMismatch, match="embeds in 64 dimensions but collection 'gs' holds 32-dim"):
        built.require_same(_identity(dim=64), "gs")
    with pytest.raises(ModelMismatch, match="preprocesses inputs differently"):
        built.require_same(_identity(size=64), "gs")
    with pytest.raises(ConfigError, match="malformed model identity"):
        ModelIdentity.from_dict({"model_ref": "m"})


def test_atomic_output_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_json_atomic(target, {"cursor": 1})
    with pytest.raises(RuntimeError), atomic_output(target, "w") as handle:
        handle.write('{"cursor": 2')  # half a document, then a crash
        raise RuntimeError("killed")
    assert target.read_text() == '{\n  "cursor": 1\n}\n'
    assert os.listdir(target.parent) == ["state.json"]  # no temporary file left behind
