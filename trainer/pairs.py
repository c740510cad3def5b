"""Training pairs and the held-out evaluation set, read from one split of a Marqo-GS dataset.

`load_training_data` reads the split table (`Dataset.read_split`) and the products of the split's
corpus (`Dataset.iter_products`; the corpus, not the split table's title/image columns, is the source of
truth), then:
1. holds out a seeded `eval.holdout_fraction` of the split's queries (at most `eval.top_q`): none of
   their pairs is trained on;
2. judges the held-out queries as the protocol does (`gcl_vectordb.evaluation.protocol`: rel 1..100
   over the whole split, a weighted query sample, top-k ground truth) and picks the products to search;
3. turns the remaining pairs into a `PairTable`: dense query/product codes and one loss weight per pair,
   w = g(s) from the weight transform fitted on the whole split (so a pair's weight never depends on
   the batch it lands in).
Pairs whose product the corpus lacks or rejected (missing image file, neither title nor image, ...) are dropped and
counted; the reader has already reported the products themselves to the `RejectLog`.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gcl_vectordb.data import Product, RejectLog, open_dataset
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.evaluation.protocol import build_qrels, rescale_relevance, sample_queries
from trainer.config import DataConfig, EvalConfig
from trainer.losses import ScoreColumns, WeightTransform

log = logging.getLogger(__name__)
OPTIONAL_SCORE_COLUMNS = ("position", "score_reciprocal")


@dataclass(frozen=True, eq=False)
class PairTable:
    """N training pairs as arrays; pair i = (queries[query_index[i]], products[product_index[i]]).

    query_index, product_index: (N,) int64 dense codes (the batch sampler's keys); weights: (N,) float32
    loss weights w_i = g(s_i).
    """

    queries: tuple[str, ...]
    products: tuple[Product, ...]
    query_index: np.ndarray
    product_index: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.query_index)


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Held-out queries (protocol order), their ground truth {query: {product_id: rel}}, the products to search."""

    queries: tuple[str, ...]
    qrels: dict[str, dict[str, int]]
    products: tuple[Product, ...]


@dataclass(frozen=True)
class DataSummary:
    """What a run trained and evaluated on (for the run record)."""

    root: str
    layout: str
    split: str
    corpus: int
    weight_column: str
    pairs_read: int
    train_pairs: int
    train_queries: int
    train_products: int
    heldout_queries: int
    eval_queries: int
    eval_products: int
    pairs_without_product: int
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class TrainingData:
    pairs: PairTable
    eval_set: EvalSet | None
    summary: DataSummary


def load_training_data(
    data: DataConfig, evaluation: EvalConfig, transform: WeightTransform, *, seed: int, rejects: RejectLog
) -> TrainingData:
    """Read `data.split` of `data.root` into training pairs and (when held out) an evaluation set."""
    if data.root is None:
        raise ConfigError("no dataset given", "pass --data DIR (or set data.root in the config file)")
    dataset = open_dataset(data.root, images_dir=data.images_dir)
    split = dataset.split(data.split)
    columns = tuple(c for c in OPTIONAL_SCORE_COLUMNS if c != data.weight_column)
    frame = dataset.read_split(split, rejects=rejects, columns=columns, weight_column=data.weight_column)
    if frame.empty:
        raise DataError(f"split {split.name} of {data.root} has no usable pairs", "check the split file")
    frame["rel"] = rescale_relevance(frame[data.weight_column])
    frame["weight"] = _pair_weights(frame, data.weight_column, transform)
    held = _held_out_queries(frame["query"], evaluation.holdout_fraction, seed, limit=evaluation.top_q)
    judged_frame = frame[frame["query"].isin(held)]
    eval_queries = sample_queries(judged_frame, evaluation.top_q) if held else []
    qrels = build_qrels(judged_frame, eval_queries, evaluation.top_k) if held else {}
    judged = {pid for rels in qrels.values() for pid in rels}
    train = frame[~frame["query"].isin(held)]
    keep_for_eval = _eval_filter(dataset.count_products(split.corpus), evaluation.max_products, judged)
    needed = set(train["product_id"].tolist())
    products, corpus = {}, []
    for batch in dataset.iter_products(split.corpus, rejects=rejects):
        for product in batch:
            if product.product_id in needed:
                products[product.product_id] = product
            if held and keep_for_eval(product.product_id):
                corpus.append(product)
    available = train["product_id"].isin(products.keys()).to_numpy()
    _report_unknown_products(train[~available], rejects, split.corpus)
    train = _subsample(train[available], data.max_pairs, seed)
    pairs = _pair_table(train, products)
    eval_set = EvalSet(tuple(eval_queries), qrels, tuple(corpus)) if held else None
    summary = DataSummary(
        root=str(data.root), layout=dataset.layout, split=split.name, corpus=split.corpus,
        weight_column=data.weight_column, pairs_read=len(frame), train_pairs=len(pairs),
        train_queries=len(pairs.queries), train_products=len(pairs.products), heldout_queries=len(held),
        eval_queries=len(eval_queries), eval_products=len(corpus),
        pairs_without_product=int((~available).sum()), rejected=rejects.reasons(),
    )
    log.info("training data: %s", summary)
    return TrainingData(pairs, eval_set, summary)


def _pair_weights(frame: pd.DataFrame, weight_column: str, transform: WeightTransform) -> np.ndarray:
    """w = g(s) per row, g fitted on the whole split; `weight_column` plays the role of score_linear."""
    columns = {"score_linear": frame[weight_column].to_numpy(np.float32)}
    for name in OPTIONAL_SCORE_COLUMNS:
        if name in frame.columns and name != weight_column:
            columns[name] = frame[name].to_numpy(np.float32)
    scores = ScoreColumns(**columns)
    try:
        weights = transform.fit(scores)(scores)
    except DataError as exc:
        raise DataError(f"cannot weight the pairs with the {transform.name!r} transform: {exc.message}",
                        exc.hint or "fix the split's score columns or choose another loss.weights") from None
    return weights.numpy()


def _held_out_queries(queries: pd.Series, fraction: float, seed: int, limit: int) -> set[str]:
    """A seeded `fraction` of the distinct queries — at least one, never all, at most `limit` (the queries
    the evaluation samples: holding out more would only take training data away) — or none for 0."""
    distinct = sorted(set(queries.tolist()))
    if fraction == 0:
        return set()
    if len(distinct) < 2:
        raise ConfigError(f"the split has {len(distinct)} distinct query, too few to hold any out",
                          "set eval.holdout_fraction=0 to train without the evaluation hook")
    count = min(max(round(fraction * len(distinct)), 1), len(distinct) - 1, limit)
    order = np.random.default_rng([seed, 0]).permutation(len(distinct))
    return {distinct[i] for i in order[:count]}


def _eval_filter(corpus_size: int, max_products: int | None, judged: set[str]):
    """A predicate on product ids: the judged products, plus a stable hash sample of the rest of about
    `max_products` in all (every product when the corpus is that small)."""
    if max_products is None or corpus_size <= max_products:
        return lambda product_id: True
    threshold = max(max_products - len(judged), 0) / corpus_size * 2**32

    def keep(product_id: str) -> bool:
        return product_id in judged or zlib.crc32(product_id.encode("utf-8")) < threshold

    return keep


def _report_unknown_products(dropped: pd.DataFrame, rejects: RejectLog, corpus: int) -> None:
    """Pairs whose product is absent from the corpus (not merely rejected there) are malformed rows."""
    if dropped.empty:
        return
    rejected = {r.product_id for r in rejects if r.product_id is not None}
    unknown = sorted(set(dropped["product_id"].tolist()) - rejected)
    for product_id in unknown:
        rejects.add(f"corpus_{corpus}", 0, "malformed-row", "paired in the split but not in the corpus", product_id)
    log.warning("%d training pairs dropped: %d products rejected by the reader, %d not in corpus %d",
                len(dropped), len(set(dropped["product_id"].tolist())) - len(unknown), len(unknown), corpus)


def _subsample(train: pd.DataFrame, max_pairs: int | None, seed: int) -> pd.DataFrame:
    if max_pairs is None or len(train) <= max_pairs:
        return train
    keep = np.sort(np.random.default_rng([seed, 1]).choice(len(train), size=max_pairs, replace=False))
    return train.iloc[keep]


def _pair_table(train: pd.DataFrame, products: dict[str, Product]) -> PairTable:
    if train.empty:
        raise DataError("no training pairs are left after holding out queries and dropping rejected products",
                        "check the dataset (gcl-vdb data info) or lower eval.holdout_fraction")
    query_index, queries = pd.factorize(train["query"])
    product_index, product_ids = pd.factorize(train["product_id"])
    return PairTable(
        queries=tuple(queries.tolist()),
        products=tuple(products[pid] for pid in product_ids.tolist()),
        query_index=query_index.astype(np.int64),
        product_index=product_index.astype(np.int64),
        weights=train["weight"].to_numpy(np.float32),
    )
