"""The GCL protocol (relevance, test queries, ground truth) on a hand-made CSV, pinned and checked against
the official evaluation code's steps (marqo-ai/GCL evals/eval_gs_v1.py), re-written here as plain pandas."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcl_vectordb.data import get_split, open_dataset
from gcl_vectordb.evaluation.protocol import (
    QUERY_KEY_SUFFIX,
    build_qrels,
    prepare_frame,
    prepare_split,
    relevance_frame,
    rescale_relevance,
    sample_queries,
    trec_query_ids,
)

# score_linear spans 1..101, so rel = int((w − 1) / 100 · 99 + 1): w=51 → 50.5 → 50, w=2 → 1.99 → 1.
HAND_CSV = """query,product_id,score_linear,query_id
red dress,p1,101,10
red dress,p2,51,10
red dress,p3,51,10
red dress,p4,2,10
red dress long,p5,76,11
red dress long,p1,26,11
blue shirt,p6,1,12
blue shirt,p7,91,12
blue shirt,p6,61,12
green hat,p8,41,13
green hat,p9,3,13
leather bag,p10,21,14
"""
HAND_RELS = [100, 50, 50, 1, 75, 25, 1, 90, 60, 40, 2, 20]
# Summed rel per query: red dress 201, blue shirt 151, red dress long 100, green hat 42, leather bag 20.


@pytest.fixture
def hand() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(HAND_CSV), dtype={"query_id": str})


def official_rescale(frame: pd.DataFrame, weight_key: str = "score_linear") -> pd.DataFrame:
    """The official rescale step, verbatim in spirit: in place on the weight column, or a constant 1."""
    frame = frame.copy()
    if len(frame[weight_key].unique()) > 1:
        w = frame[weight_key]
        frame[weight_key] = (((w - w.min()) / (w.max() - w.min())) * 99 + 1).astype(int)
    else:
        frame[weight_key] = 1
    return frame


def official_queries_and_gt(frame: pd.DataFrame, top_q: int, top_k: int) -> tuple[list[str], dict]:
    """get_test_queries + the ground-truth loop of the official code (keys: text + suffix)."""
    frame = official_rescale(frame)
    frame["query_id"] = ""
    frame["query_id"] += frame["query"] + QUERY_KEY_SUFFIX
    grouped = frame[["query_id", "score_linear"]].groupby("query_id").sum()
    sampled = grouped.sample(n=top_q, weights=grouped["score_linear"], random_state=1, replace=False)
    queries = list(sampled.sort_values(by="score_linear", ascending=False).index)
    frame = frame.set_index("query_id")
    gt = {}
    for query in queries:
        rows = frame.loc[[query]].sort_values(by="score_linear", ascending=False)
        docs, rels = rows["product_id"][:top_k].tolist(), rows["score_linear"][:top_k].tolist()
        gt[query[: -len(QUERY_KEY_SUFFIX)]] = {doc: round(rel) for doc, rel in zip(docs, rels, strict=True)}
    return [q[: -len(QUERY_KEY_SUFFIX)] for q in queries], gt


def test_rescale_pins_rounding_down_and_range(hand):
    rel = rescale_relevance(hand["score_linear"].astype(float))
    assert rel.tolist() == HAND_RELS
    assert rel.dtype == np.int64 and rel.min() == 1 and rel.max() == 100
    assert rel.tolist() == official_rescale(hand)["score_linear"].tolist()


def test_rescale_of_a_constant_column_is_all_ones():
    rel = rescale_relevance(pd.Series([7.0, 7.0, 7.0]))
    assert rel.tolist() == [1, 1, 1] and rel.dtype == np.int64


def test_rescale_refuses_text_and_empty_values():
    with pytest.raises(ValueError, match="numeric"):
        rescale_relevance(pd.Series(["a", "b"]))
    with pytest.raises(ValueError, match="empty"):
        rescale_relevance(pd.Series([1.0, np.nan]))


def _direct_pandas_sample(frame: pd.DataFrame, top_q: int, seed: int) -> list[str]:
    """The official call, made on pandas itself: grouped by text + suffix, weighted sample, sort."""
    grouped = frame.assign(key=frame["query"] + QUERY_KEY_SUFFIX)[["key", "rel"]].groupby("key").sum()
    sampled = grouped.sample(n=top_q, weights=grouped["rel"], random_state=seed, replace=False)
    return [k[: -len(QUERY_KEY_SUFFIX)] for k in sampled.sort_values(by="rel", ascending=False).index]


def test_sampling_is_pandas_weighted_sample_with_seed_1_then_summed_rel_descending(hand):
    frame = relevance_frame(hand)
    # top_q=2: pandas 3 accepts these samples (n · max p ≤ 1), so pandas itself is the reference.
    for seed in range(10):
        assert sample_queries(frame, top_q=2, seed=seed) == _direct_pandas_sample(frame, 2, seed)
    assert sample_queries(frame, top_q=2) == ["red dress", "red dress long"]  # pinned, seed 1


def test_sampling_groups_by_the_official_key_not_the_bare_text(hand):
    """The official groups sort by text + "_{!@#~}_" ("red dress long" before "red dress"), and the
    draw depends on that order: grouped by the bare text, seed 1 would pick another pair."""
    frame = relevance_frame(hand)
    by_text = frame.groupby("query")["rel"].sum()
    bare = list(by_text.sample(n=2, weights=by_text, random_state=1).index)
    assert sorted(bare) == ["blue shirt", "red dress"]
    assert sorted(sample_queries(frame, top_q=2)) == ["red dress", "red dress long"]


def test_sampling_every_query_orders_by_summed_rel_and_caps_top_q(hand):
    frame = relevance_frame(hand)
    # pandas 3 refuses this weighted sample (n · max p > 1); the official code (pandas < 3) drew it.
    with pytest.raises(ValueError, match="replace=False"):
        _direct_pandas_sample(frame, 5, 1)
    assert sample_queries(frame, top_q=2000) == ["red dress", "blue shirt", "red dress long", "green hat",
                                                 "leather bag"]


@pytest.mark.parametrize("top_q", [1, 2])
def test_queries_and_ground_truth_equal_the_official_steps(hand, top_q):
    queries, gt = official_queries_and_gt(hand, top_q, top_k=2)
    frame = relevance_frame(hand)
    assert sample_queries(frame, top_q) == queries
    assert build_qrels(frame, queries, top_k=2) == gt


def test_ground_truth_sorted_by_rel_capped_at_top_k_and_later_duplicate_wins(hand):
    frame = relevance_frame(hand)
    qrels = build_qrels(frame, ["red dress", "blue shirt", "leather bag"], top_k=2)
    # Ties at the cut (p2, p3 both 50): pandas' sort keeps file order for these few rows → p2.
    assert list(qrels["red dress"].items()) == [("p1", 100), ("p2", 50)]
    assert qrels["blue shirt"] == {"p7": 90, "p6": 60}
    assert qrels["leather bag"] == {"p10": 20}
    full = build_qrels(frame, ["red dress", "blue shirt"], top_k=1000)
    assert list(full["red dress"].items()) == [("p1", 100), ("p2", 50), ("p3", 50), ("p4", 1)]
    # p6 twice (rels 60 and 1), both within top_k: the official dict keeps the later row in rel order.
    assert full["blue shirt"] == {"p7": 90, "p6": 1}


def test_ground_truth_equals_the_official_loop_on_a_larger_random_table():
    rng = np.random.default_rng(5)
    n = 3000
    words = ["red", "dress", "a", "b a", "blue shirt", "x"]
    table = pd.DataFrame({
        "query": [" ".join(rng.choice(words, rng.integers(1, 3))) for _ in range(n)],
        "product_id": [f"p{i}" for i in rng.integers(0, 500, n)],  # many repeats within a query
        "score_linear": rng.integers(1, 40, n).astype(float),  # many ties
    })
    queries, gt = official_queries_and_gt(table, top_q=6, top_k=40)
    frame = relevance_frame(table)
    assert sample_queries(frame, 6) == queries
    qrels = build_qrels(frame, queries, top_k=40)
    assert qrels == gt and all(list(qrels[q].items()) == list(gt[q].items()) for q in queries if len(gt[q]) < 40)


def test_build_qrels_refuses_unknown_and_repeated_queries(hand):
    frame = relevance_frame(hand)
    with pytest.raises(ValueError, match="without rows"):
        build_qrels(frame, ["red dress", "no such query"])
    with pytest.raises(ValueError, match="repeat"):
        build_qrels(frame, ["red dress", "red dress"])
    with pytest.raises(ValueError, match="top_k"):
        build_qrels(frame, ["red dress"], top_k=0)
    with pytest.raises(ValueError, match="top_q"):
        sample_queries(frame, top_q=0)


def test_trec_ids_come_from_query_id_or_the_key_order(hand):
    frame = relevance_frame(hand)
    assert trec_query_ids(frame, ["blue shirt", "red dress"]) == ["12", "10"]
    without = relevance_frame(hand.drop(columns=["query_id"]))
    # key order: blue shirt, green hat, leather bag, red dress long, red dress
    assert trec_query_ids(without, ["red dress", "red dress long", "blue shirt"]) == ["q5", "q4", "q1"]
    clashing = relevance_frame(hand.assign(query_id="7"))  # one id for every query: not usable
    assert trec_query_ids(clashing, ["red dress"]) == ["q5"]


def test_prepare_frame_and_prepared_split(hand):
    prepared = prepare_frame(hand.astype({"score_linear": float}), get_split("novel-doc"), top_q=2, top_k=2)
    assert prepared.queries == ("red dress", "red dress long") and prepared.query_ids == ("10", "11")
    assert prepared.corpus == 2 and prepared.n_rows == 12 and prepared.n_distinct_queries == 5
    assert prepared.trec_qrels() == {"10": {"p1": 100, "p2": 50}, "11": {"p5": 75, "p1": 25}}


def test_prepare_split_reads_the_dataset_like_pandas_reads_the_csv(tiny_gs: Path):
    prepared = prepare_split(open_dataset(tiny_gs), "in-domain", top_q=2, top_k=4)
    queries, gt = official_queries_and_gt(pd.read_csv(tiny_gs / "query_0_product_id_0.csv"), top_q=2, top_k=4)
    assert list(prepared.queries) == queries and prepared.qrels == gt
    assert all(len(judged) == 4 for judged in prepared.qrels.values())


def test_queries_the_official_csv_reader_turns_into_nan_are_never_sampled(tiny_gs: Path, tmp_path: Path):
    """pandas' default NA spellings ("NA", "null", ...) become NaN in the official reader: their rows count in
    the rescale's min/max but the query has no key and is never sampled. The same CSV gives the same test
    queries and ground truth here."""
    root = tmp_path / "gs"
    shutil.copytree(tiny_gs, root)
    path = root / "query_0_product_id_0.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    heaviest = table.groupby("query")["score_linear"].apply(lambda s: s.astype(float).sum()).nlargest(3).index
    table.loc[table["query"] == heaviest[0], "query"] = "NA"  # the most likely draws: sampled unless dropped
    table.loc[table["query"] == heaviest[1], "query"] = "null"
    table.loc[table.index[0], "score_linear"] = "1000"  # an NA query's row sets max w for everyone
    table.loc[table.index[0], "query"] = "None"
    table.to_csv(path, index=False)

    raw = pd.read_csv(path)
    assert raw["query"].isna().sum() > 0
    queries, gt = official_queries_and_gt(raw, top_q=2, top_k=4)
    prepared = prepare_split(open_dataset(root), "in-domain", top_q=2, top_k=4)
    assert list(prepared.queries) == queries and prepared.qrels == gt
    assert not {"NA", "null", "None"} & set(prepared.queries)
    every = prepare_split(open_dataset(root), "in-domain", top_q=10_000, top_k=4)
    assert not {"NA", "null", "None"} & set(every.queries)
    assert len(every.queries) == raw["query"].nunique()  # every keyed query (the NaN group dropped)


def test_the_seed_must_be_a_numpy_seed(hand):
    from gcl_vectordb.errors import ConfigError
    from gcl_vectordb.evaluation.runner import EvalConfig

    with pytest.raises(ValueError, match="seed must be in 0"):
        sample_queries(relevance_frame(hand), top_q=2, seed=-1)
    with pytest.raises(ConfigError, match="seed must be in 0 … 4294967295"):
        EvalConfig(seed=-1)
    with pytest.raises(ConfigError, match="seed must be in 0"):
        EvalConfig(seed=2**32)


def test_a_bad_position_or_score_column_changes_nothing_in_the_evaluation(tiny_gs: Path, tmp_path: Path):
    """The official code reads only query, product_id and the weight: a row whose position or
    score_reciprocal does not parse stays in the rescale's min/max and in the sample."""
    root = tmp_path / "gs"
    shutil.copytree(tiny_gs, root)
    path = root / "query_0_product_id_0.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    top = table["score_linear"].astype(float).idxmax()  # the row that sets max w
    table.loc[top, "position"] = "first"
    table.loc[top, "score_reciprocal"] = "n/a"
    table.to_csv(path, index=False)
    from gcl_vectordb.data import RejectLog

    rejects = RejectLog()
    prepared = prepare_split(open_dataset(root), "in-domain", top_q=3, top_k=4, rejects=rejects)
    queries, gt = official_queries_and_gt(pd.read_csv(path), top_q=3, top_k=4)
    assert len(rejects) == 0 and prepared.n_rows == len(table)
    assert list(prepared.queries) == queries and prepared.qrels == gt
