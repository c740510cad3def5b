"""GCL losses against references: open_clip's ClipLoss, a naive per-row masked InfoNCE, numpy fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from gcl_vectordb.data.records import Judgment
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.errors import ConfigError, DataError
from trainer.losses import (
    WEIGHT_TRANSFORMS,
    FlooredWeights,
    GCLLoss,
    LossTerm,
    MultiFieldGCLLoss,
    ScoreColumns,
    excluded_pairs,
    fused_document_features,
    make_weight_transform,
    with_weight_floor,
)

LOGIT_SCALE = torch.tensor(1 / 0.07)


def unit(n: int, dim: int, seed: int, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=-1).float()
    return x.requires_grad_(requires_grad)


def loss_and_grads(fn, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u = u.detach().clone().requires_grad_(True)
    v = v.detach().clone().requires_grad_(True)
    loss = fn(u, v)
    loss.backward()
    return loss.detach(), u.grad, v.grad


# --- GCLLoss = CLIP with uniform weights -------------------------------------------------------------


@pytest.mark.parametrize(("n", "dim"), [(1, 4), (3, 8), (16, 32), (64, 128)])
def test_uniform_weights_equal_open_clip_clip_loss(n: int, dim: int) -> None:
    u, v = unit(n, dim, seed=n), unit(n, dim, seed=n + 100)
    ref, ref_gu, ref_gv = loss_and_grads(lambda a, b: ClipLoss()(b, a, LOGIT_SCALE), u, v)
    for weights in (None, torch.ones(n), torch.full((n,), 0.37)):
        got, gu, gv = loss_and_grads(lambda a, b, w=weights: GCLLoss()(a, b, LOGIT_SCALE, weights=w), u, v)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(gu, ref_gu, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gv, ref_gv, rtol=1e-5, atol=1e-7)


def test_binary_transform_reproduces_clip_loss() -> None:
    u, v = unit(12, 16, seed=1), unit(12, 16, seed=2)
    scores = ScoreColumns(score_linear=torch.linspace(100, 1, 12))
    weights = make_weight_transform("binary")(scores)
    assert torch.equal(weights, torch.ones(12))
    got = GCLLoss()(u, v, LOGIT_SCALE, weights=weights)
    torch.testing.assert_close(got, ClipLoss()(v, u, LOGIT_SCALE), rtol=1e-6, atol=1e-6)


def test_loss_is_invariant_to_scaling_the_weights() -> None:
    u, v = unit(10, 8, seed=3), unit(10, 8, seed=4)
    w = make_weight_transform("linear")(ScoreColumns(score_linear=torch.arange(10.0, 0.0, -1.0)))
    base, gu, gv = loss_and_grads(lambda a, b: GCLLoss()(a, b, LOGIT_SCALE, weights=w), u, v)
    scaled, su, sv = loss_and_grads(lambda a, b: GCLLoss()(a, b, LOGIT_SCALE, weights=w * 123.5), u, v)
    torch.testing.assert_close(scaled, base)
    torch.testing.assert_close(su, gu)
    torch.testing.assert_close(sv, gv)
    # ... and it is not invariant to changing their ratios: the weights matter.
    uniform = GCLLoss()(u, v, LOGIT_SCALE)
    assert not torch.isclose(uniform, base)


@pytest.mark.parametrize(
    ("n", "scale", "weight"),
    [(1, 100.0, 1.0), (8, 1e4, 1.0), (8, 100.0, 1e-30), (8, 100.0, 0.0), (32, 1e3, 1e-6)],
)
def test_gradients_are_finite(n: int, scale: float, weight: float) -> None:
    u, v = unit(n, 16, seed=5, requires_grad=True), unit(n, 16, seed=6, requires_grad=True)
    t = torch.tensor(scale, requires_grad=True)
    qids = torch.arange(n) % 3  # duplicated queries: masked logits are -inf
    loss = GCLLoss()(u, v, t, weights=torch.full((n,), weight), query_ids=qids)
    loss.backward()
    assert torch.isfinite(loss)
    for grad in (u.grad, v.grad, t.grad):
        assert torch.isfinite(grad).all()


# --- weighting pulls harder on high-score pairs --------------------------------------------------------


def _sgd_step_similarity_gain(weights: torch.Tensor | None, seed: int, lr: float = 0.05) -> torch.Tensor:
    """One SGD step on raw (unnormalised) features; returns the change of each pair's cosine, (N,)."""
    raw_u, raw_v = unit(4, 8, seed=seed, requires_grad=True), unit(4, 8, seed=seed + 1, requires_grad=True)
    before = (F.normalize(raw_u, dim=-1) * F.normalize(raw_v, dim=-1)).sum(-1).detach()
    loss = GCLLoss()(F.normalize(raw_u, dim=-1), F.normalize(raw_v, dim=-1), 10.0, weights=weights)
    loss.backward()
    with torch.no_grad():
        u, v = raw_u - lr * raw_u.grad, raw_v - lr * raw_v.grad
        after = (F.normalize(u, dim=-1) * F.normalize(v, dim=-1)).sum(-1)
    return after - before


@pytest.mark.parametrize("seed", [0, 10, 20, 30])
def test_weighting_moves_high_score_pairs_more(seed: int) -> None:
    scores = ScoreColumns(score_linear=torch.tensor([100.0, 10.0, 10.0, 10.0]))  # pair 0 is the top result
    weights = make_weight_transform("linear")(scores)
    u, v = unit(4, 8, seed=seed), unit(4, 8, seed=seed + 1)
    _, gu_uniform, gv_uniform = loss_and_grads(lambda a, b: GCLLoss()(a, b, 10.0), u, v)
    _, gu_gcl, gv_gcl = loss_and_grads(lambda a, b: GCLLoss()(a, b, 10.0, weights=weights), u, v)
    grad_on_top = lambda gu, gv: torch.cat([gu[0], gv[0]]).norm()  # noqa: E731
    assert grad_on_top(gu_gcl, gv_gcl) > 1.5 * grad_on_top(gu_uniform, gv_uniform)

    gain_uniform = _sgd_step_similarity_gain(None, seed)
    gain_gcl = _sgd_step_similarity_gain(weights, seed)
    assert gain_gcl[0] > 0
    assert gain_gcl[0] > 1.5 * gain_uniform[0]  # the top pair's similarity rises faster under GCL
    assert (gain_gcl[1:] < gain_uniform[1:]).all()  # ... and the low-score pairs' more slowly


# --- same-query masking against a naive per-row reference ----------------------------------------------


def naive_masked_loss(u, v, scale, weights, query_ids, document_ids=None, valid=None) -> torch.Tensor:
    """Per-row weighted InfoNCE: each softmax runs only over the allowed candidates, by explicit loops."""
    n = u.shape[0]
    valid = [True] * n if valid is None else valid.tolist()

    def allowed(i: int, j: int) -> bool:
        if i == j:
            return True
        same_doc = document_ids is not None and document_ids[i] == document_ids[j]
        return bool(query_ids[i] != query_ids[j] and not same_doc and valid[i] and valid[j])

    total, norm = 0.0, 0.0
    for i in range(n):
        row = [scale * u[i] @ v[j] for j in range(n) if allowed(i, j)]
        col = [scale * v[i] @ u[j] for j in range(n) if allowed(i, j)]
        ce_row = -(scale * u[i] @ v[i]) + torch.logsumexp(torch.stack(row), 0)
        ce_col = -(scale * v[i] @ u[i]) + torch.logsumexp(torch.stack(col), 0)
        w = weights[i] * (1.0 if valid[i] else 0.0)
        total = total + w * 0.5 * (ce_row + ce_col)
        norm = norm + w
    return total / norm


def test_same_query_masking_equals_naive_reference() -> None:
    qids = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    u0 = unit(7, 8, seed=7)
    u = u0[qids]  # the same query text gives the same feature: the classic false negative
    v = unit(7, 8, seed=8)
    weights = torch.tensor([1.0, 0.5, 0.2, 0.9, 0.1, 0.4, 0.7])

    got, gu, gv = loss_and_grads(lambda a, b: GCLLoss()(a, b, 5.0, weights=weights, query_ids=qids), u, v)
    ref, ru, rv = loss_and_grads(lambda a, b: naive_masked_loss(a, b, 5.0, weights, qids), u, v)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(gu, ru)
    torch.testing.assert_close(gv, rv)
    unmasked = GCLLoss()(u, v, 5.0, weights=weights)
    assert unmasked > got  # duplicated queries were hurting the loss as false negatives


def test_document_and_validity_masks_equal_naive_reference() -> None:
    qids, dids = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([10, 11, 10, 12, 13, 11])
    valid = torch.tensor([True, True, True, False, True, True])
    u, v = unit(6, 8, seed=9), unit(6, 8, seed=10)
    weights = torch.tensor([1.0, 0.3, 0.6, 0.8, 0.2, 0.5])
    got = GCLLoss()(u, v, 4.0, weights=weights, query_ids=qids, document_ids=dids, valid=valid)
    ref = naive_masked_loss(u, v, 4.0, weights, qids, dids, valid)
    torch.testing.assert_close(got, ref)


def test_excluded_pairs_mask() -> None:
    mask = excluded_pairs(query_ids=torch.tensor([5, 6, 5]))
    assert mask.tolist() == [[False, False, True], [False, False, False], [True, False, False]]
    assert excluded_pairs() is None


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="batch, dim"):
        GCLLoss()(unit(3, 4, 0), unit(4, 4, 1), 1.0)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        GCLLoss()(unit(3, 4, 0), unit(3, 4, 1), 1.0, weights=torch.ones(4))


# --- score-to-weight transforms pinned on a small table ------------------------------------------------

TABLE = ScoreColumns(
    score_linear=[100.0, 50.0, 25.0, 0.0],
    position=[1, 2, 4, 10],
    score_reciprocal=[1.0, 0.5, 0.25, 0.1],
)
# Expected values by hand: linear s/100; power (s/100)^2; log ln(1+s)/ln(101) (ln 51 = 3.931826,
# ln 26 = 3.258097, ln 101 = 4.615121); 1/position; exp(-(p-1)/2) = e^0, e^-0.5, e^-1.5, e^-4.5.
PINNED = [
    ("binary", {}, [1.0, 1.0, 1.0, 1.0]),
    ("linear", {}, [1.0, 0.5, 0.25, 0.01]),
    ("linear", {"floor": 0.0}, [1.0, 0.5, 0.25, 0.0]),
    ("linear", {"max_score": 200.0}, [0.5, 0.25, 0.125, 0.01]),
    ("power", {"gamma": 2.0}, [1.0, 0.25, 0.0625, 0.01]),
    ("power", {"gamma": 0.5, "floor": 0.0}, [1.0, 0.707107, 0.5, 0.0]),
    ("log", {}, [1.0, 0.851944, 0.705961, 0.01]),
    ("reciprocal", {}, [1.0, 0.5, 0.25, 0.1]),
    ("reciprocal", {"source": "score_reciprocal", "floor": 0.3}, [1.0, 0.5, 0.3, 0.3]),
    ("rank_exp", {"tau": 2.0}, [1.0, 0.606531, 0.223130, 0.011109]),
    ("rank_exp", {"tau": 2.0, "floor": 0.05}, [1.0, 0.606531, 0.223130, 0.05]),
]


@pytest.mark.parametrize(("name", "params", "expected"), PINNED)
def test_transform_pinned_on_small_table(name: str, params: dict, expected: list[float]) -> None:
    weights = make_weight_transform(name, **params)(TABLE)
    assert weights.dtype == torch.float32 and weights.shape == (4,)
    torch.testing.assert_close(weights, torch.tensor(expected), rtol=0, atol=1e-6)


def test_every_registered_transform_is_pinned() -> None:
    assert {name for name, _, _ in PINNED} == set(WEIGHT_TRANSFORMS)


def test_fit_takes_the_maximum_from_the_split() -> None:
    split = ScoreColumns(score_linear=[400.0, 7.0, 3.0])
    transform = make_weight_transform("linear").fit(split)
    assert transform.max_score == 400.0
    torch.testing.assert_close(transform(TABLE), torch.tensor([0.25, 0.125, 0.0625, 0.01]))
    assert make_weight_transform("reciprocal").fit(split) == make_weight_transform("reciprocal")


def test_missing_column_is_a_config_error() -> None:
    only_positions = ScoreColumns(position=[1, 2])
    with pytest.raises(ConfigError, match="needs the score_linear column"):
        make_weight_transform("linear")(only_positions)
    with pytest.raises(ConfigError, match="score_reciprocal"):
        make_weight_transform("reciprocal", source="score_reciprocal")(only_positions)
    assert make_weight_transform("binary")(ScoreColumns(num_rows=3)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("softmax", {}, "unknown weight transform"),
        ("power", {"gama": 2.0}, "has no parameter gama"),
        ("power", {"gamma": -1.0}, "gamma > 0"),
        ("linear", {"floor": 1.5}, "floor"),
        ("linear", {"max_score": 0.0}, "max_score > 0"),
        ("rank_exp", {"tau": 0.0}, "tau > 0"),
        ("reciprocal", {"source": "rank"}, "reciprocal source"),
    ],
)
def test_bad_transform_settings_are_config_errors(name: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_weight_transform(name, **params)


def test_bad_scores_are_data_errors() -> None:
    with pytest.raises(DataError, match=r"not finite at rows \[1\]"):
        make_weight_transform("linear")(ScoreColumns(score_linear=[1.0, float("nan")]))
    with pytest.raises(DataError, match=r"position is below 1 at rows \[0\]"):
        make_weight_transform("reciprocal")(ScoreColumns(position=[0, 3]))
    with pytest.raises(ConfigError, match="differ in length"):
        ScoreColumns(score_linear=[1.0, 2.0], position=[1])


def test_score_columns_from_judgments_keep_complete_columns() -> None:
    judgments = [
        Judgment("red dress", "p1", position=1, score_linear=100.0),
        Judgment("red dress", "p2", position=2, score_linear=None),
    ]
    columns = ScoreColumns.from_judgments(judgments)
    assert columns.score_linear is None and columns.score_reciprocal is None
    assert columns.position.tolist() == [1.0, 2.0] and columns.num_rows == 2


# --- multi-field ---------------------------------------------------------------------------------------


def numpy_fused(fields: dict[str, np.ndarray], alpha: dict[str, float], present: dict[str, np.ndarray]):
    """Reference fusion, row by row: α renormalised over present fields, then the sum normalised."""
    n, dim = next(iter(fields.values())).shape
    out = np.zeros((n, dim))
    for i in range(n):
        names = [f for f in alpha if present[f][i]]
        total = sum(alpha[f] for f in names)
        vec = sum((alpha[f] / total) * fields[f][i].astype(np.float64) for f in names)
        out[i] = vec / np.linalg.norm(vec)
    return out


def _fields(n: int, dim: int = 8) -> dict[str, torch.Tensor]:
    return {"query": unit(n, dim, 11), "image": unit(n, dim, 12), "title": unit(n, dim, 13)}


def test_fused_document_features_match_numpy_reference() -> None:
    fields = _fields(5)
    present = {
        "image": torch.tensor([1, 1, 0, 1, 1], dtype=torch.bool),
        "title": torch.ones(5, dtype=torch.bool),
    }
    present["title"][3] = False
    alpha = {"image": 0.9, "title": 0.1}
    got = fused_document_features(fields, FieldWeights(**alpha), present)
    ref = numpy_fused(
        {k: fields[k].numpy() for k in alpha}, alpha, {k: v.numpy() for k, v in present.items()}
    )
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[2], fields["title"][2])  # image absent: the title alone
    torch.testing.assert_close(got[3], fields["image"][3])  # title absent: the image alone


def test_default_multifield_term_is_gcl_on_the_fused_vector() -> None:
    fields = _fields(6)
    alpha = {"image": 0.7, "title": 0.3}
    weights = torch.tensor([1.0, 0.4, 0.6, 0.2, 0.9, 0.5])
    got = MultiFieldGCLLoss(field_weights=FieldWeights(**alpha))(fields, 8.0, weights=weights)
    all_present = {f: np.ones(6, dtype=bool) for f in alpha}
    fused = torch.from_numpy(numpy_fused({k: fields[k].numpy() for k in alpha}, alpha, all_present)).float()
    ref = GCLLoss()(fields["query"], fused, 8.0, weights=weights)
    torch.testing.assert_close(got, ref)


def test_multifield_sum_of_lambda_weighted_terms() -> None:
    fields = _fields(6)
    present = {"image": torch.tensor([True, True, False, True, True, True])}
    terms = [("query", "fused", 1.0), ("query", "image", 0.5), ("title", "image", 0.25)]
    loss_fn = MultiFieldGCLLoss(field_weights=FieldWeights(image=0.5, title=0.5), terms=terms)
    parts = loss_fn.term_losses(fields, 6.0, present=present)
    assert set(parts) == {"query-fused", "query-image", "title-image"}
    total = loss_fn(fields, 6.0, present=present)
    torch.testing.assert_close(
        total, parts["query-fused"] + 0.5 * parts["query-image"] + 0.25 * parts["title-image"]
    )

    # A pair without an image drops out of the image terms: the same as the batch without that row.
    keep = present["image"]
    ref_qi = GCLLoss()(fields["query"][keep], fields["image"][keep], 6.0)
    ref_ti = GCLLoss()(fields["title"][keep], fields["image"][keep], 6.0)
    torch.testing.assert_close(parts["query-image"], ref_qi)
    torch.testing.assert_close(parts["title-image"], ref_ti)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"terms": [("query", "price", 1.0)]}, "unknown loss field"),
        ({"terms": [("query", "query", 1.0)]}, "two different fields"),
        ({"terms": [("query", "image", -1.0)]}, ">= 0"),
        ({"terms": [("query", "image", 1.0), ("query", "image", 2.0)]}, "duplicate"),
        ({"terms": []}, "at least one term"),
    ],
)
def test_multifield_bad_settings_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MultiFieldGCLLoss(**kwargs)


def test_multifield_missing_features_is_a_config_error() -> None:
    fields = _fields(3)
    del fields["title"]
    with pytest.raises(ConfigError, match="features for title"):
        MultiFieldGCLLoss()(fields, 1.0)
    assert LossTerm("query", "fused").name == "query-fused"
    assert math.isfinite(float(MultiFieldGCLLoss(field_weights=FieldWeights(image=1.0, title=0.0))(fields, 1.0)))


# --- normalisation by the batch size instead of Σw -----------------------------------------------------


def per_pair_losses(u: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """ℓ_i = ½[CE(S_i·, i) + CE(S_·i, i)], (N,), by the textbook formula."""
    logits = scale * u @ v.T
    labels = torch.arange(len(u))
    return 0.5 * (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits.T, labels, reduction="none"))


@pytest.mark.parametrize(("n", "dim"), [(1, 4), (3, 8), (16, 32), (64, 128)])
def test_batch_normalisation_with_uniform_weights_equals_open_clip_clip_loss(n: int, dim: int) -> None:
    u, v = unit(n, dim, seed=n), unit(n, dim, seed=n + 100)
    ref, ref_gu, ref_gv = loss_and_grads(lambda a, b: ClipLoss()(b, a, LOGIT_SCALE), u, v)
    for weights in (None, torch.ones(n)):
        got, gu, gv = loss_and_grads(lambda a, b, w=weights: GCLLoss("batch")(a, b, LOGIT_SCALE, weights=w), u, v)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(gu, ref_gu, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gv, ref_gv, rtol=1e-5, atol=1e-7)


def test_batch_normalisation_divides_by_the_number_of_pairs() -> None:
    u, v = unit(10, 8, seed=3), unit(10, 8, seed=4)
    w = make_weight_transform("linear")(ScoreColumns(score_linear=torch.arange(10.0, 0.0, -1.0)))
    ell = per_pair_losses(u, v, 5.0)
    torch.testing.assert_close(GCLLoss("batch")(u, v, 5.0, weights=w), (w * ell).sum() / 10)
    torch.testing.assert_close(GCLLoss("sum_w")(u, v, 5.0, weights=w), (w * ell).sum() / w.sum())
    # Not invariant to the weights' scale: halving every weight halves the loss (and its gradients).
    torch.testing.assert_close(GCLLoss("batch")(u, v, 5.0, weights=w / 2), (w * ell).sum() / 20)


def test_batch_normalisation_counts_only_valid_pairs() -> None:
    u, v = unit(6, 8, seed=9), unit(6, 8, seed=10)
    valid = torch.tensor([True, True, False, True, True, False])
    weights = torch.tensor([1.0, 0.3, 0.6, 0.8, 0.2, 0.5])
    got = GCLLoss("batch")(u, v, 4.0, weights=weights, valid=valid)
    keep = valid  # an invalid pair is neither a positive nor a negative: the batch without it
    ref = (weights[keep] * per_pair_losses(u[keep], v[keep], 4.0)).sum() / int(keep.sum())
    torch.testing.assert_close(got, ref)
    nothing = torch.zeros(6, dtype=torch.bool)
    assert float(GCLLoss("batch")(u, v, 4.0, weights=weights, valid=nothing)) == 0.0


def test_multifield_loss_passes_the_normalisation_on() -> None:
    fields = _fields(6)
    weights = torch.tensor([1.0, 0.4, 0.6, 0.2, 0.9, 0.5])
    loss_fn = MultiFieldGCLLoss(terms=[("query", "image", 1.0)], normalize="batch")
    ref = (weights * per_pair_losses(fields["query"], fields["image"], 8.0)).sum() / 6
    torch.testing.assert_close(loss_fn(fields, 8.0, weights=weights), ref)
    with pytest.raises(ConfigError, match="unknown loss normalisation"):
        GCLLoss("mean")


# --- the weight floor: w = f + (1 − f) · g(s) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "floor", "expected"),
    [
        ("linear", {}, 0.5, [1.0, 0.75, 0.625, 0.505]),
        ("linear", {"floor": 0.0}, 0.2, [1.0, 0.6, 0.4, 0.2]),
        ("reciprocal", {}, 0.25, [1.0, 0.625, 0.4375, 0.325]),
        ("power", {"gamma": 2.0}, 1.0, [1.0, 1.0, 1.0, 1.0]),
        ("binary", {}, 0.3, [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_weight_floor_pinned_on_small_table(name: str, params: dict, floor: float, expected: list[float]) -> None:
    transform = with_weight_floor(make_weight_transform(name, **params), floor)
    assert transform.name == name
    torch.testing.assert_close(transform(TABLE), torch.tensor(expected), rtol=0, atol=1e-6)


def test_weight_floor_zero_is_the_transform_itself_and_fit_reaches_inside() -> None:
    linear = make_weight_transform("linear")
    assert with_weight_floor(linear, 0.0) is linear
    fitted = with_weight_floor(linear, 0.5).fit(ScoreColumns(score_linear=[400.0, 7.0]))
    assert isinstance(fitted, FlooredWeights) and fitted.inner.max_score == 400.0
    torch.testing.assert_close(fitted(TABLE), 0.5 + 0.5 * torch.tensor([0.25, 0.125, 0.0625, 0.01]))


def test_weight_floor_raises_the_effective_sample_size() -> None:
    scores = ScoreColumns(score_linear=torch.arange(50.0, 0.0, -1.0))

    def effective(w: torch.Tensor) -> float:
        return float(w.sum() ** 2 / (len(w) * (w**2).sum()))

    sizes = [effective(with_weight_floor(make_weight_transform("linear"), f)(scores)) for f in (0.0, 0.25, 0.5, 1.0)]
    assert sizes == sorted(sizes) and sizes[0] == pytest.approx(0.76, abs=0.01) and sizes[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("floor", [-0.1, 1.5, float("nan")])
def test_bad_weight_floor_is_a_config_error(floor: float) -> None:
    with pytest.raises(ConfigError, match="weight floor"):
        with_weight_floor(make_weight_transform("linear"), floor)
