"""fused_document_vector against a per-row numpy reference of normalize(Σ α_f e_f), α renormalised."""

from __future__ import annotations

import numpy as np
import pytest

from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.domain import DOCUMENT_FIELDS as FIELDS
from gcl_vectordb.encoders import fused_document_vector
from gcl_vectordb.errors import DataError


def reference(fields, present, field_weights):
    weights = field_weights.as_dict()
    out = []
    for i in range(len(next(iter(fields.values())))):
        total = sum(weights[f] for f in fields if present[f][i])
        v = sum(weights[f] / total * fields[f][i] / np.linalg.norm(fields[f][i]) for f in fields if present[f][i])
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def test_matches_reference_with_missing_fields() -> None:
    rng = np.random.default_rng(0)
    n, d = 9, 16
    fields = {f: rng.normal(size=(n, d)).astype(np.float32) for f in FIELDS}
    present = {"image": np.array([1, 1, 0, 1, 0, 1, 1, 1, 0], bool), "title": np.array([1, 0, 1, 1, 1, 1, 0, 1, 1], bool)}
    fields["image"][~present["image"]] = np.nan  # absent rows may hold anything
    got = fused_document_vector(fields, present, DEFAULT_FIELD_WEIGHTS)
    assert got.shape == (n, d) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference(fields, present, DEFAULT_FIELD_WEIGHTS), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    only_title = ~present["image"]
    expected_title = fields["title"][only_title] / np.linalg.norm(fields["title"][only_title], axis=1, keepdims=True)
    np.testing.assert_allclose(got[only_title], expected_title, atol=1e-6)


def test_weights_are_relative() -> None:
    rng = np.random.default_rng(1)
    fields = {f: rng.normal(size=(4, 8)) for f in FIELDS}
    present = {f: np.ones(4, bool) for f in fields}
    a = fused_document_vector(fields, present, FieldWeights(image=0.6, title=0.3))
    b = fused_document_vector(fields, present, FieldWeights(image=6.0, title=3.0))
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, reference(fields, present, FieldWeights(image=6.0, title=3.0)), atol=1e-6)


def test_row_without_any_field_is_an_error_naming_it() -> None:
    fields = {f: np.ones((3, 4)) for f in FIELDS}
    present = {"image": np.array([1, 0, 1], bool), "title": np.array([0, 0, 1], bool)}
    with pytest.raises(DataError, match=r"rows \[1\]"):
        fused_document_vector(fields, present, DEFAULT_FIELD_WEIGHTS)
