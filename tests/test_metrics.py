"""Ranking metrics against pytrec_eval (trec_eval), a per-query ERR/RBP reference and hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import pytrec_eval
from metric_reference import (
    err_rbp_reference,
    pytrec_measures,
    pytrec_per_query,
    pytrec_run,
    random_case,
    trec_sorted,
)

from gcl_vectordb.evaluation import (
    DEFAULT_KS,
    HEADLINE,
    JudgedRun,
    compute_metrics,
    judge_run,
)

RBP_PS = (0.5, 0.7, 0.8, 0.9)


def _assert_per_query_equal(ours: dict[str, np.ndarray], reference: dict[str, list[float]]) -> None:
    for name, expected in reference.items():
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(("seed", "max_rel"), [(0, 100), (1, 100), (2, 100), (3, 5000)])
def test_cutoff_metrics_equal_pytrec_eval_on_random_runs(seed, max_rel):
    run, qrels = random_case(seed, max_rel=max_rel)
    queries = list(qrels)
    table = compute_metrics(judge_run(run, qrels), ks=DEFAULT_KS)
    results = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS)).evaluate(pytrec_run(run))
    assert table.queries == tuple(queries)
    _assert_per_query_equal(dict(table.per_query), pytrec_per_query(results, queries, DEFAULT_KS))
    # The protocol counts queries missing from the run (0 everywhere) in the mean.
    assert table.mean()["ndcg@10"] == pytest.approx(np.mean(table.per_query["ndcg@10"]))
    assert set(queries) - set(results), "some queries must exercise the missing-query rule"


@pytest.mark.parametrize(("seed", "max_rel"), [(0, 100), (1, 100), (2, 100), (3, 5000)])
def test_err_and_rbp_equal_per_query_reference(seed, max_rel):
    run, qrels = random_case(seed, max_rel=max_rel)
    table = compute_metrics(judge_run(run, qrels), rbp_ps=RBP_PS)
    _assert_per_query_equal(dict(table.per_query), err_rbp_reference(run, qrels, list(qrels), RBP_PS, 1000))


def test_depth_truncation_equals_pytrec_eval_on_the_cut_run():
    run, qrels = random_case(3, max_retrieved=80)
    depth, ks = 25, (1, 5, 10, 25, 100)
    cut = {}
    for qid, pairs in run.items():
        top = set(trec_sorted(pairs)[:depth])
        cut[qid] = [(doc, score) for doc, score in pairs if doc in top]
    judged = judge_run(run, qrels, depth=depth)
    assert judged.retrieved.max() == depth and judged.gains.shape[1] == depth
    table = compute_metrics(judged, ks=ks, rbp_ps=RBP_PS)
    results = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(ks)).evaluate(pytrec_run(cut))
    _assert_per_query_equal(dict(table.per_query), pytrec_per_query(results, list(qrels), ks))
    _assert_per_query_equal(dict(table.per_query), err_rbp_reference(run, qrels, list(qrels), RBP_PS, depth))


def test_ties_are_broken_as_trec_eval_breaks_them():
    qrels = {"q": {"a": 1, "b": 0, "c": 0, "d": 0}}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    tied = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}}
    # Pinned trec_eval behaviour: equal scores rank by doc id descending (d, c, b, a) ...
    assert evaluator.evaluate(tied)["q"]["recip_rank"] == 0.25
    # ... and scores are compared as float32: 0.1 + 1e-9 ties with 0.1, 0.1 + 1e-7 does not.
    assert evaluator.evaluate({"q": {"a": 0.1 + 1e-9, "b": 0.1}})["q"]["recip_rank"] == 0.5
    assert evaluator.evaluate({"q": {"a": 0.1 + 1e-7, "b": 0.1}})["q"]["recip_rank"] == 1.0
    judged = judge_run({"q": list(tied["q"].items())}, qrels)
    np.testing.assert_array_equal(judged.gains, [[0, 0, 0, 1]])
    assert judge_run({"q": [("a", 0.1 + 1e-9), ("b", 0.1)]}, qrels).gains.tolist() == [[0, 1]]
    assert judge_run({"q": [("a", 0.1 + 1e-7), ("b", 0.1)]}, qrels).gains.tolist() == [[1, 0]]
    # Code-point order, as strcmp on UTF-8: "a" > "B" > "10" > "1".
    mixed = [("1", 0.5), ("B", 0.5), ("a", 0.5), ("10", 0.5)]
    rels = {"q": {"a": 4, "B": 3, "10": 2, "1": 1}}
    assert judge_run({"q": mixed}, rels).gains.tolist() == [[4, 3, 2, 1]]


def test_each_query_is_judged_by_its_own_judgments_and_unjudged_ties_keep_trec_order():
    qrels = {"a": {"d1": 3, "d2": 0}, "b": {"d2": 5}, "c": {}}
    run = {"a": [("d2", 0.9), ("d9", 0.5), ("d1", 0.1)], "b": [("d1", 0.7), ("d2", 0.6)], "c": [("d1", 0.3)]}
    judged = judge_run(run, qrels)
    assert judged.gains.tolist() == [[0, 0, 3], [0, 5, 0], [0, 0, 0]]
    assert judged.retrieved.tolist() == [3, 2, 1] and judged.max_rel.tolist() == [3, 5, 0]
    # x, y, z tie in float32; trec_eval order z, y, x puts y, the only judged one, at rank 2.
    assert judge_run({"q": [("x", 0.5), ("y", 0.5 + 1e-9), ("z", 0.5)]}, {"q": {"y": 7}}).gains.tolist() == [[0, 7, 0]]


def test_ranked_doc_ids_give_the_same_judgment_as_scored_pairs():
    run, qrels = random_case(4)
    ranked = {qid: trec_sorted(pairs) for qid, pairs in run.items()}
    scored, from_ids = judge_run(run, qrels, depth=30), judge_run(ranked, qrels, depth=30)
    for field in ("gains", "retrieved", "ideal", "n_relevant", "max_rel"):
        np.testing.assert_array_equal(getattr(scored, field), getattr(from_ids, field), err_msg=field)


def test_pairs_in_score_order_with_ties_unbroken_rank_like_shuffled_pairs():
    run, qrels = random_case(6)
    # Retrieval returns pairs by score already, but breaks ties its own way (here: doc id ascending).
    presorted = {qid: sorted(pairs, key=lambda p: (-p[1], p[0])) for qid, pairs in run.items()}
    np.testing.assert_array_equal(judge_run(presorted, qrels).gains, judge_run(run, qrels).gains)
    gains = judge_run(presorted, qrels).gains
    for row, qid in enumerate(qrels):
        expected = [qrels[qid].get(doc, 0) for doc in trec_sorted(run.get(qid, []))]
        assert gains[row, : len(expected)].tolist() == expected


def _tiny_table():
    """Ranked rels [3, 0, 1, unjudged, 2]; judged {a: 3, b: 0, c: 1, e: 2, f: 3} (f not retrieved)."""
    run = {"q": [("a", 0.9), ("b", 0.8), ("c", 0.7), ("x", 0.6), ("e", 0.5)]}
    qrels = {"q": {"a": 3, "b": 0, "c": 1, "e": 2, "f": 3}}
    return compute_metrics(judge_run(run, qrels), ks=(1, 3, 5, 10), rbp_ps=(0.5, 0.8)).mean()


def test_hand_computed_cutoff_metrics():
    m = _tiny_table()
    assert m["precision@1"] == 1.0 and m["precision@3"] == pytest.approx(2 / 3)
    assert m["precision@5"] == pytest.approx(3 / 5) and m["precision@10"] == pytest.approx(3 / 10)
    assert m["recall@3"] == pytest.approx(2 / 4) and m["recall@10"] == pytest.approx(3 / 4)
    assert m["map@3"] == pytest.approx((1 / 1 + 2 / 3) / 4)
    assert m["map@10"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 4)
    assert m["mrr@1"] == 1.0
    assert m["ndcg@1"] == 1.0
    ideal_3 = 3 + 3 / math.log2(3) + 2 / 2
    assert m["ndcg@3"] == pytest.approx((3 + 1 / 2) / ideal_3)
    ideal_5 = ideal_3 + 1 / math.log2(5)
    assert m["ndcg@5"] == pytest.approx((3 + 1 / 2 + 2 / math.log2(6)) / ideal_5)


def test_hand_computed_err_and_rbp():
    m = _tiny_table()
    # R = (2^rel − 1) / 2^3 = [7/8, 0, 1/8, 0, 3/8]; p = 1, 1/8, 1/8, 7/64, 7/64.
    assert m["err"] == pytest.approx(7 / 8 + (1 / 8) * (1 / 8) / 3 + (7 / 64) * (3 / 8) / 5, abs=1e-15)
    # rel / max_rel = [1, 0, 1/3, 0, 2/3].
    assert m["rbp@0.5"] == pytest.approx(0.5 * (1 + 1 / 3 * 0.25 + 2 / 3 * 0.0625), abs=1e-15)
    assert m["rbp@0.8"] == pytest.approx(0.2 * (1 + 1 / 3 * 0.64 + 2 / 3 * 0.4096), abs=1e-15)


def test_hand_computed_mrr_and_missing_query_in_the_mean():
    run = {"q1": ["x", "y", "r"], "q2": ["r"]}
    qrels = {"q1": {"r": 1}, "q2": {"r": 5}, "q3": {"r": 1}}  # q3 is missing from the run
    table = compute_metrics(judge_run(run, qrels), ks=(2, 3))
    np.testing.assert_array_equal(table.per_query["mrr@3"], [1 / 3, 1.0, 0.0])
    np.testing.assert_array_equal(table.per_query["mrr@2"], [0.0, 1.0, 0.0])
    assert table.mean()["mrr@3"] == pytest.approx((1 / 3 + 1) / 3)
    assert table.mean()["err"] == pytest.approx((1 / 2 / 3 + 31 / 32) / 3)


def test_edge_cases_score_zero_and_never_nan():
    qrels = {"empty": {"a": 2}, "no-relevant": {"a": 0, "b": 0}, "unjudged": {}, "missing": {"z": 1}}
    run = {"empty": [], "no-relevant": [("a", 1.0), ("b", 0.5)], "unjudged": [("a", 1.0)]}
    table = compute_metrics(judge_run(run, qrels))
    for name, values in table.per_query.items():
        assert values.shape == (4,) and np.isfinite(values).all(), name
        np.testing.assert_array_equal(values, 0.0, err_msg=name)
    nothing = compute_metrics(judge_run({}, {"q": {"a": 1}}))
    assert set(nothing.mean().values()) == {0.0}
    none_at_all = compute_metrics(judge_run({}, {}))
    assert none_at_all.mean()["ndcg@10"] == 0.0 and none_at_all.headline()["err"] == 0.0


def test_judged_run_shapes_and_immutability():
    judged = judge_run({"q": [("a", 1.0), ("b", 2.0)]}, {"q": {"a": 2, "c": 5, "d": 0}, "r": {"a": 1}})
    assert judged.queries == ("q", "r")
    assert judged.gains.tolist() == [[0, 2], [0, 0]]
    assert judged.retrieved.tolist() == [2, 0]
    assert judged.ideal.tolist() == [[5, 2, 0], [1, 0, 0]]
    assert judged.n_relevant.tolist() == [2, 1] and judged.max_rel.tolist() == [5, 1]
    with pytest.raises(ValueError):
        judged.gains[0, 0] = 3
    with pytest.raises(ValueError, match="one row per query"):
        JudgedRun(("q",), judged.gains, judged.retrieved, judged.ideal, judged.n_relevant, judged.max_rel, 10)


def test_queries_argument_decides_order_and_membership():
    qrels = {"a": {"x": 1}, "b": {"x": 1}, "c": {"y": 1}}
    judged = judge_run({"a": ["x"], "b": ["y"], "c": ["y"]}, qrels, queries=["c", "a"])
    assert judged.queries == ("c", "a") and judged.gains.tolist() == [[1], [1]]


def test_headline_and_json_table():
    run, qrels = random_case(5)
    table = compute_metrics(judge_run(run, qrels))
    assert tuple(table.headline()) == HEADLINE
    as_dict = json.loads(json.dumps(table.to_dict(per_query=True)))
    assert as_dict["headline"]["ndcg@10"] == table.mean()["ndcg@10"] == as_dict["at_k"]["ndcg"]["10"]
    assert set(as_dict["at_k"]) == {"ndcg", "map", "mrr", "recall", "precision"}
    assert list(as_dict["at_k"]["recall"]) == [str(k) for k in DEFAULT_KS]
    assert as_dict["rbp"]["0.7"] == table.mean()["rbp@0.7"]
    assert as_dict["per_query"]["queries"] == list(qrels)
    with pytest.raises(ValueError, match="ndcg@10"):
        compute_metrics(judge_run(run, qrels), ks=(5,)).headline()


@pytest.mark.parametrize(
    ("run", "qrels", "kwargs", "message"),
    [
        ({"q": [("a", float("nan"))]}, {"q": {"a": 1}}, {}, "NaN"),
        ({"q": [("a", 1.0)]}, {"q": {"a": -1}}, {}, "≥ 0"),
        ({}, {"q": {}}, {"queries": ["q", "q"]}, "repeat"),
        ({}, {"q": {}}, {"depth": 0}, "depth"),
    ],
)
def test_bad_inputs_are_refused(run, qrels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        judge_run(run, qrels, **kwargs)


def test_bad_cutoffs_are_refused():
    judged = judge_run({}, {"q": {"a": 1}})
    with pytest.raises(ValueError, match="cutoffs"):
        compute_metrics(judged, ks=(0, 10))
    with pytest.raises(ValueError, match="persistence"):
        compute_metrics(judged, rbp_ps=(1.0,))
