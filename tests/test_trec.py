"""TREC run/qrels files: round trips, and pytrec_eval on the written files reproduces our metrics."""

from __future__ import annotations

import numpy as np
import pytest
import pytrec_eval
from metric_reference import pytrec_measures, pytrec_per_query, random_case, trec_sorted

from gcl_vectordb.errors import DataError
from gcl_vectordb.evaluation import (
    compute_metrics,
    judge_run,
    read_qrels,
    read_run,
    save_trec_files,
    write_qrels,
    write_run,
)

KS = (1, 5, 10, 100)


def test_run_and_qrels_round_trip(tmp_path):
    run, qrels = random_case(7)
    run["tiny-scores"] = [("a", 1e-300), ("b", 0.1 + 1e-16), ("c", -2.5e10)]
    write_run(tmp_path / "run.trec", run, tag="gcl")
    write_qrels(tmp_path / "qrels.trec", qrels)
    read_back = read_run(tmp_path / "run.trec")
    assert {q: sorted(p) for q, p in read_back.items()} == {q: sorted(p) for q, p in run.items() if p}
    assert read_qrels(tmp_path / "qrels.trec") == {q: j for q, j in qrels.items() if j}


def test_run_file_is_in_trec_eval_order_with_ranks(tmp_path):
    run = {"q": [("a", 0.5), ("c", 0.9), ("b", 0.5)]}
    lines = write_run(tmp_path / "run.trec", run, tag="t").read_text().splitlines()
    assert lines == ["q Q0 c 1 0.9 t", "q Q0 b 2 0.5 t", "q Q0 a 3 0.5 t"]


def test_ranked_doc_ids_are_written_with_descending_scores(tmp_path):
    run, qrels = random_case(8)
    ranked = {qid: trec_sorted(pairs) for qid, pairs in run.items()}
    write_run(tmp_path / "run.trec", ranked, tag="t")
    read_back = read_run(tmp_path / "run.trec")
    assert {q: trec_sorted(p) for q, p in read_back.items()} == {q: d for q, d in ranked.items() if d}
    np.testing.assert_array_equal(judge_run(read_back, qrels).gains, judge_run(run, qrels).gains)


@pytest.mark.parametrize("seed", [9, 10])
def test_pytrec_eval_on_written_files_equals_our_metrics(tmp_path, seed):
    run, qrels = random_case(seed)
    run_path, qrels_path = save_trec_files(tmp_path / "saved", "in-domain", run, qrels, tag="gcl")
    assert (run_path.name, qrels_path.name) == ("run.in-domain.trec", "qrels.in-domain.trec")
    with run_path.open() as run_lines, qrels_path.open() as qrels_lines:
        their_run, their_qrels = pytrec_eval.parse_run(run_lines), pytrec_eval.parse_qrel(qrels_lines)
    results = pytrec_eval.RelevanceEvaluator(their_qrels, pytrec_measures(KS)).evaluate(their_run)
    ours = compute_metrics(judge_run(run, qrels), ks=KS)
    for name, expected in pytrec_per_query(results, list(qrels), KS).items():
        np.testing.assert_allclose(ours.per_query[name], expected, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    ("text", "reader", "message"),
    [
        ("q Q0 d 1 0.5\n", read_run, r":1: expected 6 fields"),
        ("q Q0 d 1 0.5 t\n\nq Q0 e 2 high t\n", read_run, r":3: score 'high' is not a number"),
        ("q Q0 d 1 0.5 t\nq Q0 d 2 0.4 t\n", read_run, r":2: document d appears twice"),
        ("q 0 d 1\nq 0 e x\n", read_qrels, r":2: relevance 'x' is not an integer"),
        ("q 0 d 1\nq 0 d 2\n", read_qrels, r":2: document d appears twice"),
        ("q 0 d\n", read_qrels, r":1: expected 4 fields"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, text, reader, message):
    path = tmp_path / "file.trec"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        reader(path)


def test_missing_file_and_unwritable_ids_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_run(tmp_path / "absent.trec")
    with pytest.raises(ValueError, match="whitespace"):
        write_run(tmp_path / "r.trec", {"q": [("a b", 1.0)]}, tag="t")
    with pytest.raises(ValueError, match="whitespace"):
        write_run(tmp_path / "r.trec", {"q": [("a", 1.0)]}, tag="my run")
    with pytest.raises(ValueError, match="whitespace"):
        write_qrels(tmp_path / "q.trec", {"q 1": {"a": 1}})
    with pytest.raises(ValueError, match="repeats"):
        write_run(tmp_path / "r.trec", {"ok": [("a", 1.0)], "q": [("a", 1.0), ("a", 0.5)]}, tag="t")
    assert not list(tmp_path.iterdir()), "a refused write leaves no partial file"
