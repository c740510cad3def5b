"""Brute-force check: Qdrant's exact top-k against numpy over the stored vectors (docs/architecture.md,
"Testing conventions": Qdrant search = numpy brute force).

The corpus's stored vectors (`store.retrieve(..., with_vectors=True)`, unit length: the engine normalises
cosine vectors) are scored against the unit query vectors by `exact_run` (the project's one exact top-k):
score(q, d) = q · d / |q| (= cosine). Qdrant's list must be a top-k of those scores, document by
document, up to swaps among scores within `SCORE_TOLERANCE` (float32 dot products summed in another
order differ by ~1e-7); the metrics of both runs, each ranked as trec_eval ranks it, must agree to 1e-9.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from gcl_vectordb.data.dataset import Dataset
from gcl_vectordb.encoders.protocol import l2_normalize
from gcl_vectordb.evaluation.judging import Run, judge_run
from gcl_vectordb.evaluation.metrics import compute_metrics
from gcl_vectordb.evaluation.protocol import PreparedSplit
from gcl_vectordb.evaluation.report import BruteForceCheck
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import VectorStore
from gcl_vectordb.topk import exact_run

log = logging.getLogger(__name__)

SCORE_TOLERANCE = 1e-5
FETCH_BATCH = 1024


def corpus_vectors(
    store: VectorStore, collection: str, dataset: Dataset, corpus: int, vector: str,
    progress: Progress = NULL_PROGRESS,
) -> tuple[list[str], np.ndarray]:
    """Product ids and stored `vector` `(n, dim)` of the corpus's products that the store holds in that
    corpus (payload corpus == `corpus`, as the search filter sees them) and that have that vector."""
    ids = [p.product_id for batch in dataset.iter_products(corpus, check_images=False) for p in batch]
    task = progress.task(f"fetching corpus {corpus} vectors", total=len(ids), unit="points")
    found, rows = [], []
    for start in range(0, len(ids), FETCH_BATCH):
        for point in store.retrieve(collection, ids[start:start + FETCH_BATCH], with_vectors=True):
            if point.payload.get("corpus") == corpus and vector in point.vectors:
                found.append(point.product_id)
                rows.append(point.vectors[vector])
        task.advance(min(FETCH_BATCH, len(ids) - start))
    task.close()
    dim = store.get_record(collection).dim
    return found, np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)


def compare_runs(
    prepared: PreparedSplit, qdrant: Run, numpy_run: Run, query_vectors: np.ndarray, doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
) -> BruteForceCheck:
    """Rankings (document by document, ties within SCORE_TOLERANCE aside) and metrics of both runs, each
    listing the split's queries best first."""
    column = {doc: i for i, doc in enumerate(doc_ids)}
    unit = l2_normalize(query_vectors)
    mismatched, max_score_diff = [], 0.0
    for q, query in enumerate(prepared.queries):
        ours, theirs = qdrant.get(query, []), numpy_run.get(query, [])
        known = [column.get(doc, -1) for doc, _ in ours]
        same = len(ours) == len(theirs) and -1 not in known and len({doc for doc, _ in ours}) == len(ours)
        if same and ours:
            truth = doc_vectors[known] @ unit[q]  # numpy's score of each document Qdrant returned
            max_score_diff = max(max_score_diff, float(np.max(np.abs(truth - [s for _, s in ours]))))
            same = bool(np.all(np.abs(truth - [s for _, s in theirs]) <= SCORE_TOLERANCE))
        if not same:
            mismatched.append(query)
    ours_table, numpy_table = (compute_metrics(judge_run(run, prepared.qrels, queries=prepared.queries,
                                                         depth=prepared.top_k)) for run in (qdrant, numpy_run))
    metric_diff = max((float(np.max(np.abs(values - numpy_table.per_query[name]), initial=0.0))
                       for name, values in ours_table.per_query.items()), default=0.0)
    if mismatched:
        log.warning("brute-force check: %d queries rank differently, e.g. %r", len(mismatched), mismatched[0])
    return BruteForceCheck(
        n_queries=len(prepared.queries), n_documents=len(doc_ids), rankings_identical=not mismatched,
        mismatched_queries=tuple(mismatched[:10]), max_score_difference=max_score_diff,
        max_metric_difference=metric_diff, score_tolerance=SCORE_TOLERANCE,
    )


def bruteforce_check(
    store: VectorStore, collection: str, dataset: Dataset, prepared: PreparedSplit, query_vectors: np.ndarray,
    qdrant: Run, *, vector: str, k: int, progress: Progress = NULL_PROGRESS,
) -> BruteForceCheck:
    """Fetch the corpus's vectors, rank with numpy, compare with Qdrant's exact run `qdrant`."""
    doc_ids, doc_vectors = corpus_vectors(store, collection, dataset, prepared.corpus, vector, progress)
    numpy_run = exact_run(prepared.queries, l2_normalize(query_vectors), doc_ids, doc_vectors, k)
    return compare_runs(prepared, qdrant, numpy_run, query_vectors, doc_ids, doc_vectors)
