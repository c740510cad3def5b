"""The GCL evaluation protocol (docs/protocol.md, "The evaluation protocol"): relevance, test queries,
ground truth.

Written to give exactly what Marqo's official evaluation (github.com/marqo-ai/GCL, `evals/eval_gs_v1.py`:
the rescale in `run_eval`, `get_test_queries`, the ground-truth loop) gives on the same split CSV:

1. rel = int(((w − min w) / (max w − min w)) · 99 + 1) over the whole split table, w = `score_linear`;
   all 1 when w is constant (official: `len(unique) > 1`). int64, 1..100, truncated (= rounded down).
2. The official code groups rows by a query *key*, query text + "_{!@#~}_" (its `query_id` built from
   the text; the CSV's own `query_id` column is overwritten). `groupby(key).sum()` orders the groups by
   that key, and the sample depends on that order, so the key is rebuilt here verbatim: "a b" sorts
   before "a" once the suffix is appended (' ' < '_'). The object sampled is that grouped DataFrame
   (one row per distinct query, column rel = summed rel): `sample(n, weights=its rel column,
   replace=False, random_state=seed)` — with pandas < 3's semantics, which pandas 3 keeps but refuses
   where n · max(p) > 1 (`_weighted_sample`) — then `sort_values(by=rel, ascending=False)` — pandas' default
   (non-stable) quicksort, so queries with equal summed rel come in the order pandas gives.
   top_q is capped at the number of distinct queries, as the official code does since commit c463c83.
   A CSV query cell pandas reads as NaN by default (`"NA"`, `"null"`, … — `CSV_NA_QUERIES`) has no key
   there (NaN + suffix is NaN, and `groupby` drops it): such a query is never sampled, while its rows
   still count in the rescale's min/max (`prepare_split` applies this to the official layout's CSVs).
3. Ground truth of a query: its rows in file order, `sort_values(by=rel, ascending=False)` (again the
   default quicksort), first top_k, `{product_id: rel}` built in that order (a product listed twice
   keeps the later row's rel). Where the order cannot matter (≤ top_k rows, no repeated product) the
   rows are taken directly; otherwise pandas sorts them exactly as above.

Qrels from here are keyed by query *text* (the official ground truth is keyed by the text + suffix).
TREC files need whitespace-free ids: `PreparedSplit.query_ids` gives each query one (the CSV's
`query_id` where it names each query exactly once, else "q<n>", n = the query's 1-based place in the
sorted key order) and `PreparedSplit.trec_qrels()` re-keys the ground truth by them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gcl_vectordb.data.dataset import Dataset
from gcl_vectordb.data.records import RejectLog, Split
from gcl_vectordb.data.tables import DEFAULT_WEIGHT_COLUMN
from gcl_vectordb.evaluation.judging import Qrels

CSV_NA_QUERIES: frozenset[str] = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
"""Cells `pandas.read_csv` reads as NaN by default (pandas 2.2.2, the official pin: `STR_NA_VALUES`)."""
QUERY_KEY_SUFFIX = "_{!@#~}_"
"""What the official code appends to the query text to form its group key (the order of groups)."""
REL = "rel"
DEFAULT_TOP_Q = 2000
DEFAULT_TOP_K = 1000
DEFAULT_SEED = 1
_WHITESPACE = re.compile(r"\s")


def rescale_relevance(scores: pd.Series) -> pd.Series:
    """Graded relevance 1..100 (int64) from a weight column, over the whole table (docs/protocol.md,
    "Relevance").

    rel = int(((w − min w) / (max w − min w)) · 99 + 1), evaluated in that order in float64 as the
    official code does (so float rounding matches too); 1 everywhere when w takes one value.
    """
    if not pd.api.types.is_numeric_dtype(scores.dtype) or pd.api.types.is_bool_dtype(scores.dtype):
        raise ValueError(f"the weight column must be numeric, got dtype {scores.dtype}")
    if scores.isna().any():
        raise ValueError("the weight column has empty values; the reader drops such rows")
    if len(scores.unique()) > 1:
        low, high = scores.min(), scores.max()
        return (((scores - low) / (high - low)) * 99 + 1).astype(np.int64)
    return pd.Series(1, index=scores.index, dtype=np.int64, name=scores.name)


def relevance_frame(split_frame: pd.DataFrame, weight_column: str = DEFAULT_WEIGHT_COLUMN) -> pd.DataFrame:
    """The columns the protocol needs: query, product_id, rel (rescaled `weight_column`), and query_id
    where the table has one. Rows stay in file order."""
    missing = [c for c in ("query", "product_id", weight_column) if c not in split_frame.columns]
    if missing:
        raise ValueError(f"the split table lacks column(s) {', '.join(missing)}")
    columns = {"query": split_frame["query"].astype(str), "product_id": split_frame["product_id"].astype(str),
               REL: rescale_relevance(split_frame[weight_column])}
    if "query_id" in split_frame.columns:
        columns["query_id"] = split_frame["query_id"].astype(str)
    return pd.DataFrame(columns)


def _grouped_relevance(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct query, indexed by the official query key (sorted), column rel = Σ rel."""
    keys = frame["query"].astype(str) + QUERY_KEY_SUFFIX
    return pd.DataFrame({"query_key": keys, REL: frame[REL]}).groupby("query_key").sum()


def sample_queries(
    frame: pd.DataFrame, top_q: int = DEFAULT_TOP_Q, seed: int = DEFAULT_SEED, *, unkeyed: Collection[str] = (),
) -> list[str]:
    """The test queries of a split (docs/protocol.md, "Test queries"): min(top_q, #queries) query texts,
    highest summed rel first.

    `frame` needs query and rel (see `relevance_frame`). Sampling is pandas' own
    `DataFrame.sample(n, weights=summed rel, replace=False, random_state=seed)` on the grouped table
    (module docstring), so the same CSV gives the same queries as the official code. Queries in
    `unkeyed` (`CSV_NA_QUERIES` for a CSV) are never sampled. `seed`: 0 ≤ seed < 2³² (numpy's RandomState).
    """
    if top_q < 1:
        raise ValueError(f"top_q must be ≥ 1, got {top_q}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in 0 … 2³² − 1, got {seed}")
    summed = _grouped_relevance(frame)
    if unkeyed:
        summed = summed.drop(index=[q + QUERY_KEY_SUFFIX for q in unkeyed], errors="ignore")
    if summed.empty:
        return []
    sampled = _weighted_sample(summed, min(top_q, len(summed)), seed)
    sampled = sampled.sort_values(by=REL, ascending=False)
    return [key[: -len(QUERY_KEY_SUFFIX)] for key in sampled.index]


def _weighted_sample(summed: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`summed.sample(n=n, weights=summed[REL], replace=False, random_state=seed)` as pandas computed it
    when the official code was written (pandas < 3): `RandomState(seed).choice(len, n, replace=False,
    p=weights / Σ weights)`, then `take`. pandas 3 computes the same draw but refuses it where
    n · max(p) > 1 (e.g. sampling every query of a small split); the official protocol does not."""
    weights = summed[REL].to_numpy(dtype=np.float64)
    chosen = np.random.RandomState(seed).choice(len(summed), size=n, replace=False, p=weights / weights.sum())
    return summed.take(chosen)


def build_qrels(frame: pd.DataFrame, queries: Sequence[str], top_k: int = DEFAULT_TOP_K) -> dict[str, dict[str, int]]:
    """Ground truth (docs/protocol.md, "Ground truth"): {query text: {product_id: rel}} for `queries`, each
    cut at its top_k rels.

    `frame` needs query, product_id and rel. Every query must occur in `frame`. Cost: one stable sort
    of the queries' rows; pandas sorts only the queries where the official order decides the result.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k}")
    wanted = pd.Index(list(queries))
    if not wanted.is_unique:
        raise ValueError("queries must not repeat")
    position = wanted.get_indexer(frame["query"].astype(str))
    rows = np.flatnonzero(position >= 0)
    owner, rels = position[rows], frame[REL].to_numpy()[rows]
    if not np.issubdtype(rels.dtype, np.integer):
        raise ValueError(f"rel must be an integer column, got {rels.dtype}")
    counts = np.bincount(owner, minlength=len(wanted))
    absent = [wanted[i] for i in np.flatnonzero(counts == 0)[:5]]
    if absent:
        raise ValueError(f"queries without rows in the split table: {absent}")
    order = np.lexsort((-rels, owner))  # by query, rel descending, ties in file order
    ids = frame["product_id"].to_numpy()[rows[order]].tolist()
    values = rels[order].tolist()
    bounds = np.concatenate(([0], np.cumsum(counts))).tolist()
    qrels: dict[str, dict[str, int]] = {}
    for i, query in enumerate(wanted):
        start, stop = bounds[i], bounds[i + 1]
        judged = dict(zip(ids[start:stop], values[start:stop], strict=True))
        if stop - start > top_k or len(judged) < stop - start:  # the official order decides what is kept
            judged = _official_ground_truth(frame.iloc[np.sort(rows[order[start:stop]])], top_k)
        qrels[query] = judged
    return qrels


def _official_ground_truth(rows: pd.DataFrame, top_k: int) -> dict[str, int]:
    """One query's rows (file order) as the official loop treats them: sort_values(rel, descending),
    first top_k, a dict built in that order."""
    ranked = rows.sort_values(by=REL, ascending=False)
    docs, rels = ranked["product_id"].tolist()[:top_k], ranked[REL].tolist()[:top_k]
    return {doc: int(rel) for doc, rel in zip(docs, rels, strict=True)}


def trec_query_ids(frame: pd.DataFrame, queries: Sequence[str]) -> list[str]:
    """Whitespace-free ids for `queries` (TREC files): the table's query_id where it names each query
    exactly once, else "q<n>", n = the query's 1-based rank in the official key order."""
    if "query_id" in frame.columns:
        pairs = frame[["query", "query_id"]].drop_duplicates()
        ids = pairs["query_id"].astype(str)
        if pairs["query"].is_unique and ids.is_unique and not ids.str.contains(_WHITESPACE).any() \
                and not (ids == "").any():
            by_query = dict(zip(pairs["query"].tolist(), ids.tolist(), strict=True))
            return [by_query[q] for q in queries]
    keys = _grouped_relevance(frame).index
    rank = {key[: -len(QUERY_KEY_SUFFIX)]: n for n, key in enumerate(keys, 1)}
    return [f"q{rank[q]}" for q in queries]


@dataclass(frozen=True, eq=False)
class PreparedSplit:
    """A split ready to evaluate: test queries (texts, protocol order), their TREC ids, ground truth."""

    split: Split
    queries: tuple[str, ...]
    query_ids: tuple[str, ...]
    qrels: Qrels  # keyed by query text
    top_q: int
    top_k: int
    seed: int
    n_rows: int  # rows of the split table
    n_distinct_queries: int

    @property
    def corpus(self) -> int:
        return self.split.corpus

    def trec_qrels(self) -> dict[str, dict[str, int]]:
        """The ground truth keyed by TREC query id."""
        return {qid: dict(self.qrels[q]) for q, qid in zip(self.queries, self.query_ids, strict=True)}


def prepare_frame(
    split_frame: pd.DataFrame, split: Split, *, top_q: int = DEFAULT_TOP_Q, top_k: int = DEFAULT_TOP_K,
    seed: int = DEFAULT_SEED, weight_column: str = DEFAULT_WEIGHT_COLUMN, unkeyed: Collection[str] = (),
) -> PreparedSplit:
    """`PreparedSplit` of an already-read split table (see `prepare_split`; `unkeyed`: `sample_queries`)."""
    frame = relevance_frame(split_frame, weight_column)
    queries = sample_queries(frame, top_q, seed, unkeyed=unkeyed)
    return PreparedSplit(
        split=split, queries=tuple(queries), query_ids=tuple(trec_query_ids(frame, queries)),
        qrels=build_qrels(frame, queries, top_k), top_q=top_q, top_k=top_k, seed=seed, n_rows=len(frame),
        n_distinct_queries=int(frame["query"].nunique()),
    )


def prepare_split(
    dataset: Dataset, split: Split | str, *, top_q: int = DEFAULT_TOP_Q, top_k: int = DEFAULT_TOP_K,
    seed: int = DEFAULT_SEED, weight_column: str = DEFAULT_WEIGHT_COLUMN, rejects: RejectLog | None = None,
) -> PreparedSplit:
    """Read a split of `dataset` and apply the protocol: rel, sampled test queries, ground truth. In the
    official layout, queries the official CSV reader turns into NaN (`CSV_NA_QUERIES`) are not sampled."""
    resolved = dataset.split(split)
    table = dataset.read_split(resolved, columns=("query_id",), rejects=rejects, weight_column=weight_column)
    unkeyed = CSV_NA_QUERIES if dataset.layout == "official" else frozenset()
    return prepare_frame(table, resolved, top_q=top_q, top_k=top_k, seed=seed, weight_column=weight_column,
                         unkeyed=unkeyed)
