"""What the synthetic benchmark's grades encode, for the GCL-vs-CLIP replication (`gcl_vs_clip.py`).

A query names k ∈ {1, 2, 3} attributes; its list holds the 50 products with the highest
matches + U(−0.75, 0.75) (`gcl_vectordb/data/synth/ranking.py`), so position (hence score_linear, the
training weight and the evaluation's rel) is the match count plus noise. Measured here:

- `list_composition`: share of exact matches (all k attributes) by position band and by k, and how many
  exact matches the catalogue holds per query against how many its list has room for;
- `weight_shares`: per weight transform, the share of the training loss weight that exact-match pairs
  carry and the effective sample size (Σw)² / (N Σw²) — what graded weights change in the loss;
- `oracle_scores`: the protocol's metrics of rankings that need no model: `attribute oracle` (products by
  match count, exact first, ties in random order — the best a model that knows every attribute can do
  on unseen queries/products), `list oracle` (the listed products first, in random order: knows which
  products the noise put in the list, but not their order), and `random`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gcl_vectordb.data.synth.catalogue import SynthData, make_data
from gcl_vectordb.data.synth.text import NO_VALUE

if TYPE_CHECKING:
    from pathlib import Path

POSITION_BANDS: tuple[tuple[int, int], ...] = ((1, 5), (6, 10), (11, 20), (21, 30), (31, 40), (41, 50))


def synth_data(products: int, queries: int, seed: int, results_per_query: int = 50) -> SynthData:
    """The generator's decisions (no images, no files) for the same settings as the dataset on disk."""
    return make_data(products, queries, results_per_query, seed)


def query_sizes(data: SynthData) -> dict[str, int]:
    """{query text: number of attributes it names}."""
    sizes = (data.queries.attributes != NO_VALUE).sum(axis=1)
    return dict(zip(data.queries.texts, sizes.tolist(), strict=True))


def _exact(data: SynthData) -> tuple[np.ndarray, np.ndarray]:
    """(pairs,) bool: the product matches every attribute of the query; (pairs,) the query's k."""
    k = (data.queries.attributes != NO_VALUE).sum(axis=1)[data.lists.query]
    return data.lists.matches == k, k


def list_composition(data: SynthData) -> dict[str, Any]:
    """Exact-match shares by position band and by query size; exact matches in the catalogue per query."""
    exact, k = _exact(data)
    position = data.lists.position
    bands = {f"{lo}-{hi}": float(exact[(position >= lo) & (position <= hi)].mean()) for lo, hi in POSITION_BANDS}
    attributes = data.catalogue.attributes
    by_size: dict[str, Any] = {}
    for size in (1, 2, 3):
        rows = k == size
        queries = np.flatnonzero((data.queries.attributes != NO_VALUE).sum(axis=1) == size)
        in_catalogue = [int(_matching(attributes, data.queries.attributes[q]).sum()) for q in queries]
        by_size[str(size)] = {
            "queries": len(queries), "pairs": int(rows.sum()),
            "exact_share_of_list": float(exact[rows].mean()) if rows.any() else 0.0,
            "exact_in_catalogue_per_query": float(np.mean(in_catalogue)) if in_catalogue else 0.0,
        }
    return {"exact_share": float(exact.mean()), "exact_share_by_position": bands, "by_query_size": by_size}


def list_order(data: SynthData) -> dict[str, float]:
    """How much of the lists' order content explains. Over every pair of positions i < j of a list:
    the share where the higher-placed product matches more of the query's attributes (content orders
    them), the same number (the order is noise), or fewer (noise overturned content). Only the first
    share can be learnt for queries or products never trained on."""
    lists = data.lists
    counts = np.zeros(3)
    for start, stop in zip(*_list_bounds(lists.query), strict=True):
        matches = lists.matches[start:stop].astype(np.int8)  # in position order
        upper = np.triu(np.ones((len(matches), len(matches)), dtype=bool), k=1)
        diff = (matches[:, None] - matches[None, :])[upper]
        counts += [(diff > 0).sum(), (diff == 0).sum(), (diff < 0).sum()]
    total = float(counts.sum()) or 1.0
    return {"ordered_by_content": float(counts[0]) / total, "tied_order_is_noise": float(counts[1]) / total,
            "inverted_by_noise": float(counts[2]) / total}


def _list_bounds(query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop rows of each query's list (the lists are stored query after query)."""
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    return starts, np.r_[starts[1:], len(query)]


def _matching(attributes: np.ndarray, query: np.ndarray) -> np.ndarray:
    named = query != NO_VALUE
    return (attributes[:, named] == query[named]).all(axis=1)


def weight_shares(data: SynthData, rows: np.ndarray, transforms: dict[str, Any],
                  shuffled: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Per transform (name → WeightTransform, fitted here on `rows`, the training split's pairs): the mean
    weight, the share of Σw on exact matches (vs their share of pairs) and the effective sample size.
    `shuffled`: name → a permutation of the rows, applied to that transform's weights (the control arm)."""
    from trainer.losses import ScoreColumns

    position = data.lists.position[rows].astype(np.float32)
    scores = ScoreColumns(score_linear=data.results_per_query + 1 - position, position=position,
                          score_reciprocal=1.0 / position)
    exact = _exact(data)[0][rows]
    out = {}
    for name, transform in transforms.items():
        w = transform.fit(scores)(scores).numpy().astype(np.float64)
        if shuffled and name in shuffled:
            w = w[shuffled[name]]
        out[name] = {"mean_weight": float(w.mean()), "exact_pair_share": float(exact.mean()),
                     "exact_weight_share": float(w[exact].sum() / w.sum()),
                     "effective_sample_fraction": float(w.sum() ** 2 / (len(w) * (w**2).sum()))}
    return out


def oracle_scores(data: SynthData, root: Path, splits: tuple[str, ...], seed: int = 0) -> dict[str, Any]:
    """Protocol metrics (headline + NDCG@10 by query size) of the model-free rankings, per split."""
    from gcl_vectordb.data import open_dataset
    from gcl_vectordb.evaluation import compute_metrics, judge_run
    from gcl_vectordb.evaluation.protocol import prepare_split

    catalogue = data.catalogue
    attributes_of = dict(zip(data.queries.texts, data.queries.attributes, strict=True))
    sizes = query_sizes(data)
    dataset = open_dataset(root)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for split in splits:
        prepared = prepare_split(dataset, split)
        corpus = data.referenced_products(prepared.corpus)
        ids = [catalogue.product_ids[i] for i in corpus.tolist()]
        runs: dict[str, dict[str, list[tuple[str, float]]]] = {"attribute oracle": {}, "list oracle": {},
                                                                "random": {}}
        for query in prepared.queries:
            wanted = attributes_of[query]
            named = wanted != NO_VALUE
            matches = (catalogue.attributes[corpus][:, named] == wanted[named]).sum(axis=1)
            listed = np.array([pid in prepared.qrels[query] for pid in ids])
            tie = rng.random(len(ids)) * 0.5  # random order within a tier
            for name, score in (("attribute oracle", matches + tie), ("list oracle", listed + tie),
                                ("random", tie)):
                top = np.argsort(-score, kind="stable")[:1000]
                runs[name][query] = [(ids[j], float(score[j])) for j in top.tolist()]
        out[split] = {}
        for name, run in runs.items():
            table = compute_metrics(judge_run(run, prepared.qrels, queries=list(prepared.queries), depth=1000))
            out[split][name] = {**table.headline(), "ndcg@10_by_query_size": by_query_size(table, sizes)}
    return out


def by_query_size(table, sizes: dict[str, int]) -> dict[str, float]:
    """Mean NDCG@10 of a `MetricTable`'s queries grouped by how many attributes they name."""
    values = table.per_query["ndcg@10"]
    groups: dict[str, list[float]] = {}
    for query, value in zip(table.queries, values.tolist(), strict=True):
        groups.setdefault(str(sizes.get(query, 0)), []).append(value)
    return {size: float(np.mean(v)) for size, v in sorted(groups.items())}
