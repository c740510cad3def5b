"""The one exact top-k (`gcl_vectordb.topk`) against a full stable sort, at several sizes and block sizes."""

from __future__ import annotations

import numpy as np
import pytest

from gcl_vectordb import topk
from gcl_vectordb.topk import exact_run, exact_top_k, top_k


@pytest.mark.parametrize(("n", "k"), [(0, 3), (1, 1), (5, 3), (5, 5), (5, 9), (200, 17)])
def test_top_k_is_the_head_of_a_stable_descending_sort(n, k):
    scores = np.random.default_rng(n).integers(0, 6, n).astype(np.float32)  # many ties
    chosen = top_k(scores, k)
    reference = np.argsort(-scores, kind="stable")[:k]
    assert len(chosen) == min(k, n)
    np.testing.assert_array_equal(scores[chosen], scores[reference])  # the k best scores, best first
    for value in np.unique(scores[chosen]):  # equal scores come in index order
        tied = chosen[scores[chosen] == value]
        assert (np.diff(tied) > 0).all()
    distinct = np.random.default_rng(n).permutation(n).astype(np.float32)
    np.testing.assert_array_equal(top_k(distinct, k), np.argsort(-distinct)[:k])


@pytest.mark.parametrize("block", [1, 7, topk.BLOCK_SCORES])
def test_exact_top_k_equals_a_full_sort_of_the_cosines(block, monkeypatch):
    monkeypatch.setattr(topk, "BLOCK_SCORES", block)
    rng = np.random.default_rng(block)
    queries = rng.normal(size=(9, 8)).astype(np.float32)
    documents = rng.normal(size=(30, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    indices, scores = exact_top_k(queries, documents, 12)
    assert indices.shape == scores.shape == (9, 12) and scores.dtype == np.float32
    full = queries @ documents.T
    np.testing.assert_array_equal(indices, np.argsort(-full, axis=1, kind="stable")[:, :12])
    np.testing.assert_allclose(scores, np.take_along_axis(full, indices, axis=1), rtol=0, atol=1e-6)  # BLAS by block
    run = exact_run([f"q{i}" for i in range(9)], queries, [f"d{j}" for j in range(30)], documents, 40)
    assert list(run) == [f"q{i}" for i in range(9)] and all(len(pairs) == 30 for pairs in run.values())
    assert run["q0"][0] == (f"d{indices[0, 0]}", float(scores[0, 0]))
