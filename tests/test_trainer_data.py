"""Training data: pairs and the held-out evaluation set, the protocol helpers, items and batches, the towers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gcl_vectordb.data import RejectLog, open_dataset
from gcl_vectordb.encoders import ClipTokenizer
from gcl_vectordb.encoders.models import encode_text_fast
from gcl_vectordb.encoders.tokenizer import open_clip_vocab_path
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.evaluation.protocol import QUERY_KEY_SUFFIX, build_qrels, rescale_relevance, sample_queries
from trainer.config import DataConfig, EvalConfig
from trainer.data import Augment, PairDataset, collate_pairs, load_pixels
from trainer.losses import make_weight_transform
from trainer.model import ClipTowers
from trainer.pairs import load_training_data


def _load(root: Path, fraction: float = 0.2, seed: int = 0, rejects: RejectLog | None = None, **data):
    return load_training_data(DataConfig(root=root, **data), EvalConfig(holdout_fraction=fraction),
                              make_weight_transform("linear"), seed=seed, rejects=RejectLog() if rejects is None else rejects)


def test_rescale_relevance_is_the_protocol_formula() -> None:
    w = pd.Series([1.0, 50.0, 25.5, 2.0, 49.0])
    expected = [int((x - 1.0) / 49.0 * 99 + 1) for x in w]
    assert rescale_relevance(w).tolist() == expected == [1, 100, 50, 3, 97]
    assert rescale_relevance(pd.Series([3.0, 3.0])).tolist() == [1, 1]


def test_sample_queries_is_pandas_weighted_sample_where_pandas_accepts() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"query": [f"q{i % 40}" for i in range(400)], "rel": rng.integers(1, 101, 400)})
    summed = frame.groupby("query")["rel"].sum()
    # The official code groups by the query text + a suffix, which orders "q10" before "q1".
    keyed = summed.rename(lambda query: query + QUERY_KEY_SUFFIX).sort_index()
    reference = keyed.sample(n=10, weights=keyed, replace=False, random_state=1).sort_values(ascending=False)
    assert sample_queries(frame, 10) == [key[: -len(QUERY_KEY_SUFFIX)] for key in reference.index]
    everything = sample_queries(frame, 1000)  # more than there are: all, by summed rel descending
    assert sorted(everything) == sorted(summed.index) and everything[0] == summed.idxmax()


def test_build_qrels_keeps_top_k_by_rel() -> None:
    frame = pd.DataFrame({"query": ["a", "a", "a", "b"], "product_id": ["p1", "p2", "p3", "p1"],
                          "rel": [10, 90, 50, 7]})
    assert build_qrels(frame, ["a", "b"], top_k=2) == {"a": {"p2": 90, "p3": 50}, "b": {"p1": 7}}


def test_training_pairs_hold_queries_out(tiny_gs: Path) -> None:
    data = _load(tiny_gs)
    split = open_dataset(tiny_gs).read_split("in-domain")
    assert data.eval_set is not None and data.summary.heldout_queries == 2
    held = set(split["query"]) - set(data.pairs.queries)
    assert len(held) == 2 and set(data.eval_set.queries) == held
    assert data.summary.pairs_read == len(split) and len(data.pairs) == (~split["query"].isin(held)).sum()
    # Graded weights: score_linear / the split's max; ground truth: the protocol's rel.
    keys = list(zip(split["query"], split["product_id"], strict=True))
    lookup = dict(zip(keys, split["score_linear"], strict=True))
    for row in range(len(data.pairs)):
        query = data.pairs.queries[data.pairs.query_index[row]]
        product = data.pairs.products[data.pairs.product_index[row]].product_id
        assert data.pairs.weights[row] == pytest.approx(lookup[query, product] / split["score_linear"].max())
    rel = dict(zip(keys, rescale_relevance(split["score_linear"]), strict=True))
    for query, judged in data.eval_set.qrels.items():
        assert judged and all(rel[query, pid] == r for pid, r in judged.items())
    corpus = {p.product_id for batch in open_dataset(tiny_gs).iter_products(1) for p in batch}
    assert {p.product_id for p in data.eval_set.products} == corpus
    # Deterministic in the seed; another seed holds out other queries.
    assert _load(tiny_gs).eval_set.queries == data.eval_set.queries
    assert any(set(_load(tiny_gs, seed=s).eval_set.queries) != held for s in (1, 2, 3))


def test_no_holdout_and_subsampling(tiny_gs: Path) -> None:
    data = _load(tiny_gs, fraction=0.0, max_pairs=20)
    assert data.eval_set is None and len(data.pairs) == 20 and data.summary.eval_queries == 0
    with pytest.raises(ConfigError, match="max_pairs"):
        DataConfig(max_pairs=0)


def test_rejected_products_drop_their_pairs(tiny_gs: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_gs, tmp_path / "gs"))
    pairs = open_dataset(root).read_split("in-domain")
    victim = pairs["product_id"].iloc[0]
    image = next(p for b in open_dataset(root).iter_products(1) for p in b if p.product_id == victim).image_path
    image.unlink()
    rejects = RejectLog()
    data = _load(root, fraction=0.0, rejects=rejects)
    assert victim not in {p.product_id for p in data.pairs.products}
    assert data.summary.pairs_without_product == (pairs["product_id"] == victim).sum()
    assert [(r.product_id, r.reason) for r in rejects] == [(victim, "missing-image")]


def test_items_batches_and_a_corrupt_image(tiny_gs: Path, tmp_path: Path, micro_model) -> None:
    root = Path(shutil.copytree(tiny_gs, tmp_path / "gs"))
    data = _load(root, fraction=0.0)
    tokenizer = ClipTokenizer(open_clip_vocab_path(), 77)
    dataset = PairDataset(data.pairs, tokenizer, micro_model.preprocessor())
    broken = data.pairs.products[data.pairs.product_index[1]]
    broken.image_path.write_bytes(b"not a jpeg")
    items = [dataset[0], dataset[1]]
    batch = collate_pairs(items)
    assert batch.query_tokens.shape == batch.title_tokens.shape == (2, 77)
    assert batch.pixels.shape == (2, 3, 32, 32) and batch.pixels.dtype == torch.float32
    assert batch.has_image.tolist() == [True, False] and not batch.pixels[1].any()
    assert batch.image_problems[0][0] == broken.product_id and batch.image_problems[0][1].startswith("corrupt-image")
    query = data.pairs.queries[data.pairs.query_index[0]]
    assert batch.query_tokens[0].tolist() == tokenizer([query])[0].tolist()
    assert batch.weights[0] == pytest.approx(float(data.pairs.weights[0]))
    expected = micro_model.preprocessor().from_bytes(data.pairs.products[data.pairs.product_index[0]]
                                                     .read_image_bytes())
    np.testing.assert_array_equal(batch.pixels[0].numpy(), expected)


def test_augmentation_is_seeded_per_epoch_and_row(tiny_gs: Path, micro_model) -> None:
    data = _load(tiny_gs, fraction=0.0)
    product = data.pairs.products[0]
    prep = micro_model.preprocessor()
    first = load_pixels(product, prep, Augment(), np.random.default_rng([0, 0, 5]))[0]
    again = load_pixels(product, prep, Augment(), np.random.default_rng([0, 0, 5]))[0]
    other = load_pixels(product, prep, Augment(), np.random.default_rng([0, 1, 5]))[0]
    plain = load_pixels(product, prep)[0]
    np.testing.assert_array_equal(first, again)
    assert first.shape == plain.shape and not np.array_equal(first, other)


def test_trimmed_text_tower_equals_the_full_context(micro_model) -> None:
    model = micro_model.model
    tokens = torch.from_numpy(ClipTokenizer(open_clip_vocab_path(), 77)(
        ["red dress", "a long striped cotton summer shirt with buttons", "bag"]))
    with torch.no_grad():
        full = model.encode_text(tokens, normalize=True)
        trimmed = encode_text_fast(model, tokens)
    torch.testing.assert_close(trimmed, full, atol=2e-6, rtol=1e-5)
    towers = ClipTowers(model, fields=("query", "image"))
    with torch.no_grad():
        features, scale = towers(tokens, tokens, torch.zeros(3, 3, 32, 32))
    assert set(features) == {"query", "image"} and scale == model.logit_scale.exp()
