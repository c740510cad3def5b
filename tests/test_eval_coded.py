"""Integer-coded judging (`judge_codes`) gives exactly `judge_run`'s JudgedRun, hence the same metrics."""

from __future__ import annotations

import numpy as np
import pytest
from metric_reference import random_case

from gcl_vectordb.evaluation import compute_metrics, judge_run
from gcl_vectordb.evaluation.coded import CodedQrels, RetrievedRun, judge_codes, lookup_codes

FIELDS = ("gains", "retrieved", "ideal", "n_relevant", "max_rel")


def _retrieved(run: dict, queries: list[str], shuffle: int | None = None) -> RetrievedRun:
    """The run as retrieval hands it over: per query ids and float32 scores (optionally shuffled)."""
    rng = np.random.default_rng(shuffle)
    ids, scores = [], []
    for q in queries:
        pairs = list(run.get(q, []))
        if shuffle is not None:
            pairs = [pairs[i] for i in rng.permutation(len(pairs))]
        ids.append([d for d, _ in pairs])
        scores.append([s for _, s in pairs])
    return RetrievedRun.from_lists(queries, ids, scores)


def _assert_same(a, b) -> None:
    assert a.queries == b.queries and a.depth == b.depth
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and np.array_equal(x, y), name


@pytest.mark.parametrize(("seed", "shuffle", "depth"), [(0, None, 1000), (1, 3, 1000), (2, None, 17), (3, 5, 1)])
def test_judge_codes_equals_judge_run(seed, shuffle, depth):
    run, qrels = random_case(seed, max_rel=5000 if seed == 3 else 100)  # ties, unjudged, empty, missing
    queries = list(qrels)
    retrieved = _retrieved(run, queries, shuffle)
    coded = CodedQrels.from_qrels(qrels, queries)
    # judge_run ranks scores as float32 too; give it the float32 values retrieval hands over.
    as_pairs = retrieved.as_run()
    _assert_same(judge_codes(coded, retrieved, depth=depth), judge_run(as_pairs, qrels, queries=queries, depth=depth))
    # As retrieval hands it over: codes looked up per query while converting the hits.
    with_codes = RetrievedRun.from_lists(
        queries, retrieved.doc_ids, [row[:n] for row, n in zip(retrieved.scores, retrieved.lengths, strict=True)],
        codes=[lookup_codes(coded, i, ids) for i, ids in enumerate(retrieved.doc_ids)], codes_for=coded,
    )
    assert np.array_equal(with_codes.codes, retrieved.codes_in(coded))
    table = compute_metrics(judge_codes(coded, with_codes, depth=depth))
    reference = compute_metrics(judge_run(as_pairs, qrels, queries=queries, depth=depth))
    for name, values in reference.per_query.items():
        np.testing.assert_array_equal(table.per_query[name], values, err_msg=name)


def test_codes_point_at_the_query_own_judgments():
    qrels = {"a": {"d1": 3, "d2": 0}, "b": {"d2": 5}, "c": {}}
    coded = CodedQrels.from_qrels(qrels)
    run = RetrievedRun.from_lists(["a", "b", "c"], [["d2", "d9", "d1"], ["d1", "d2"], ["d1"]],
                                  [[0.9, 0.5, 0.1], [0.7, 0.6], [0.3]])
    codes = run.codes_in(coded)
    assert codes.tolist() == [[1, -1, 0], [-1, 2, -1], [-1, -1, -1]]
    assert coded.rels[codes[codes >= 0]].tolist() == [0, 3, 5]
    judged = judge_codes(coded, run, codes=codes)
    assert judged.gains.tolist() == [[0, 0, 3], [0, 5, 0], [0, 0, 0]]
    assert judged.retrieved.tolist() == [3, 2, 1] and judged.max_rel.tolist() == [3, 5, 0]
    assert coded.to_qrels() == qrels


def test_codes_of_another_ground_truth_are_not_trusted():
    coded = CodedQrels.from_qrels({"a": {"d1": 3, "d2": 4}})
    other = CodedQrels.from_qrels({"a": {"d2": 9, "d1": 8}})
    run = RetrievedRun.from_lists(["a"], [["d1"]], [[0.5]], codes=[lookup_codes(other, 0, ["d1"])], codes_for=other)
    assert run.codes.tolist() == [[1]] and run.codes_in(coded).tolist() == [[0]]
    assert judge_codes(coded, run).gains.tolist() == [[3]] and judge_codes(other, run).gains.tolist() == [[8]]
    with pytest.raises(ValueError, match="CodedQrels"):
        RetrievedRun.from_lists(["a"], [["d1"]], [[0.5]], codes=[np.array([0])])


def test_ties_are_broken_by_product_id_descending_even_for_unjudged_products():
    qrels = {"q": {"b": 7}}
    # a, b, c tie in float32; trec_eval order: c, b, a → b (the only judged one) at rank 2.
    run = RetrievedRun.from_lists(["q"], [["a", "b", "c"]], [[0.5, 0.5 + 1e-9, 0.5]])
    assert judge_codes(CodedQrels.from_qrels(qrels), run).gains.tolist() == [[0, 7, 0]]


def test_mismatched_inputs_are_refused():
    coded = CodedQrels.from_qrels({"a": {"d": 1}})
    other = RetrievedRun.from_lists(["b"], [["d"]], [[1.0]])
    with pytest.raises(ValueError, match="same queries"):
        judge_codes(coded, other)
    run = RetrievedRun.from_lists(["a"], [["d"]], [[1.0]])
    with pytest.raises(ValueError, match="depth"):
        judge_codes(coded, run, depth=0)
    with pytest.raises(ValueError, match="shape"):
        judge_codes(coded, run, codes=np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="as many scores"):
        RetrievedRun.from_lists(["a"], [["d", "e"]], [[1.0]])
    with pytest.raises(ValueError, match="repeat"):
        CodedQrels.from_qrels({"a": {}}, ["a", "a"])
    with pytest.raises(ValueError, match="rels"):
        CodedQrels.from_qrels({"a": {"d": -1}})


def test_empty_ground_truth_and_empty_run_score_zero():
    coded = CodedQrels.from_qrels({"a": {}, "b": {}})
    run = RetrievedRun.from_lists(["a", "b"], [[], ["x"]], [[], [0.2]])
    judged = judge_codes(coded, run)
    assert judged.gains.tolist() == [[0], [0]] and judged.retrieved.tolist() == [0, 1]
    assert all(float(v.max()) == 0.0 for v in compute_metrics(judged).per_query.values())
