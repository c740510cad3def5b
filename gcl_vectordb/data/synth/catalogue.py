"""Everything the generator decides before writing: products, queries, the 2×2 split, result lists.

Each decision draws from its own seeded stream (`np.random.default_rng((seed, purpose))`), so turning
images off or changing the output format never changes ids, titles, queries, lists or splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gcl_vectordb.data.records import Split
from gcl_vectordb.data.synth.ranking import ResultLists, rank_all
from gcl_vectordb.data.synth.text import QuerySet, make_queries, make_titles
from gcl_vectordb.data.synth.vocabulary import BRANDS, SLOTS, VALUES
from gcl_vectordb.progress import NULL_PROGRESS, Progress

TRAIN_QUERY_SHARE = 0.8  # docs/protocol.md, "The four splits": 80 % of queries train, 20 % unseen
CORPUS_1_SHARE = 0.5  # 50 % of products in corpus 1, the rest in corpus 2
STREAM_CATALOGUE, STREAM_TITLES, STREAM_QUERIES, STREAM_SPLITS, STREAM_RANKING, STREAM_GT, STREAM_CAPTIONS = range(1, 8)


@dataclass(frozen=True)
class Catalogue:
    """n products: ids `id-<uint63>`, attributes `(n, 4)` int8 (SLOTS order), brands, corpus `(n,)` 1|2."""

    product_ids: tuple[str, ...]
    attributes: np.ndarray
    brands: np.ndarray
    titles: tuple[str, ...]
    corpus: np.ndarray


@dataclass(frozen=True)
class SynthData:
    """The generated benchmark: catalogue, queries (`is_train` `(m,)` bool), and all result lists."""

    catalogue: Catalogue
    queries: QuerySet
    is_train: np.ndarray
    lists: ResultLists
    results_per_query: int

    def split_rows(self, split: Split) -> np.ndarray:
        """Indices into `lists` of the split's rows: its queries' results within its corpus, list order."""
        lists = self.lists
        wants_train = split.queries == "train"
        in_corpus = self.catalogue.corpus[lists.product] == split.corpus
        keep = (self.is_train[lists.query] == wants_train) & in_corpus
        return np.flatnonzero(keep)

    def referenced_products(self, corpus: int) -> np.ndarray:
        """Catalogue indices (ascending) of the corpus's products that appear in some result list."""
        products = np.unique(self.lists.product)
        return products[self.catalogue.corpus[products] == corpus]


def _unique_ids(count: int, rng: np.random.Generator) -> tuple[str, ...]:
    values = np.unique(rng.integers(0, 2**63 - 1, count, dtype=np.int64))
    while len(values) < count:  # a 63-bit collision: draw the shortfall again
        more = rng.integers(0, 2**63 - 1, count - len(values), dtype=np.int64)
        values = np.unique(np.concatenate([values, more]))
    rng.shuffle(values)
    return tuple(f"id-{v}" for v in values.tolist())


def make_catalogue(count: int, seed: int) -> Catalogue:
    rng = np.random.default_rng((seed, STREAM_CATALOGUE))
    attributes = np.stack([rng.integers(0, len(VALUES[slot]), count) for slot in SLOTS], axis=1)
    attributes = attributes.astype(np.int8)
    brands = rng.integers(0, len(BRANDS), count).astype(np.int8)
    product_ids = _unique_ids(count, rng)
    titles = make_titles(attributes, brands, np.random.default_rng((seed, STREAM_TITLES)))
    corpus = np.full(count, 2, dtype=np.int8)
    shuffled = np.random.default_rng((seed, STREAM_SPLITS)).permutation(count)
    corpus[shuffled[: round(count * CORPUS_1_SHARE)]] = 1
    return Catalogue(product_ids, attributes, brands, tuple(titles), corpus)


def make_data(
    products: int, queries: int, results_per_query: int, seed: int, progress: Progress = NULL_PROGRESS
) -> SynthData:
    """Draw the catalogue and queries, split both, and rank every query over the whole catalogue."""
    catalogue = make_catalogue(products, seed)
    query_set = make_queries(queries, np.random.default_rng((seed, STREAM_QUERIES)))
    is_train = np.zeros(queries, dtype=bool)
    split_rng = np.random.default_rng((seed, STREAM_SPLITS, 1))
    is_train[split_rng.permutation(queries)[: round(queries * TRAIN_QUERY_SHARE)]] = True
    task = progress.task("ranking result lists", total=queries, unit="queries")
    lists = rank_all(catalogue.attributes, query_set.attributes, results_per_query,
                     np.random.default_rng((seed, STREAM_RANKING)), task)
    task.close()
    return SynthData(catalogue, query_set, is_train, lists, results_per_query)
