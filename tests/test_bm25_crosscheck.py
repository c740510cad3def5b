"""BM25 in the store against independent implementations, on the synthetic dataset's titles and queries.

The engine's `bm25` mode (through `evaluate`'s retrieval, IDF over the split's corpus) must give the
top-10 of rank_bm25 (its own term counting and scoring, with Qdrant's IDF and the collection's fixed
avg_len put in) and of the plain-Python reference, up to the order of tied scores, for every query of
every split. benchmarks/hybrid.py runs the same check on the demo-size dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.data import SPLITS, open_dataset
from gcl_vectordb.evaluation.protocol import prepare_split
from gcl_vectordb.evaluation.runner import EvalConfig, retrieve
from gcl_vectordb.store import open_store
from gcl_vectordb.store.bm25 import Bm25Settings
from tests.bm25_reference import bm25_scores, rank_bm25_top, same_top

TOP = 10


@pytest.mark.parametrize("split", [s.name for s in SPLITS])
def test_engine_bm25_top10_equals_rank_bm25_and_the_plain_reference(ingested: Path, tiny_gs: Path, split: str) -> None:
    dataset = open_dataset(tiny_gs)
    prepared = prepare_split(dataset, split, top_q=2000, top_k=TOP)
    products = [p for batch in dataset.iter_products(prepared.corpus, check_images=False) for p in batch]
    ids, titles = [p.product_id for p in products], [p.title for p in products]
    config = EvalConfig(splits=(split,), collection="gs", store=str(ingested), k=TOP, vector="bm25")
    with open_store(ingested) as store:
        settings = store.get_record("gs").bm25
        engine = retrieve(store, "gs", prepared, None, config, exact=True)
    assert settings == Bm25Settings()
    library = rank_bm25_top(titles, ids, prepared.queries, settings, TOP)
    matched = 0
    for query in prepared.queries:
        plain = bm25_scores(titles, query, settings)
        ranked = sorted(plain.items(), key=lambda item: -item[1])[:TOP]
        assert same_top(engine[query], [(ids[i], s) for i, s in ranked]), query
        assert same_top(library[query], [(ids[i], s) for i, s in ranked]), query
        matched += bool(engine[query])
    assert matched >= len(prepared.queries) // 2  # most queries share words with some title


def test_the_corpus_mean_instead_of_avg_len_changes_scores_not_necessarily_rankings(tiny_gs: Path) -> None:
    """What the fixed avg_len means: rank_bm25 with its own corpus-mean length scores differently."""
    dataset = open_dataset(tiny_gs)
    products = [p for batch in dataset.iter_products(1, check_images=False) for p in batch]
    ids, titles = [p.product_id for p in products], [p.title for p in products]
    queries = ["red dress", "striped shirt", "leather bag"]
    fixed = rank_bm25_top(titles, ids, queries, Bm25Settings(), TOP)
    mean = rank_bm25_top(titles, ids, queries, Bm25Settings(), TOP, fixed_avg_len=False)
    differs = [not np.allclose([s for _, s in fixed[q]], [s for _, s in mean[q]]) for q in queries if fixed[q]]
    assert differs and all(differs)
