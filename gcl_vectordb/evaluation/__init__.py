"""Evaluation: the GCL protocol, judging a retrieval run against graded ground truth, the metrics.

`protocol`: `rescale_relevance`, `sample_queries`, `build_qrels`, `prepare_split` → `PreparedSplit`
(test queries, ground truth, TREC ids). `judge_run(run, qrels)` → `JudgedRun` (dense arrays);
`compute_metrics(judged)` → `MetricTable` (per-query values, means, the protocol's headline); `trec`
reads and writes standard TREC files.
Through the vector store: `gcl_vectordb.evaluation.runner.evaluate(EvalConfig(...))` → `EvalReport`
(imported from its module: it needs the store and the encoders).
"""

from gcl_vectordb.evaluation.judging import JudgedRun, Qrels, RankedRun, Run, judge_run, trec_rank_order
from gcl_vectordb.evaluation.metrics import (
    DEFAULT_KS,
    DEFAULT_RBP_PS,
    HEADLINE,
    MetricTable,
    compute_metrics,
    metric_name,
)
from gcl_vectordb.evaluation.protocol import (
    PreparedSplit,
    build_qrels,
    prepare_frame,
    prepare_split,
    relevance_frame,
    rescale_relevance,
    sample_queries,
)
from gcl_vectordb.evaluation.trec import read_qrels, read_run, save_trec_files, write_qrels, write_run

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_RBP_PS",
    "HEADLINE",
    "JudgedRun",
    "MetricTable",
    "PreparedSplit",
    "Qrels",
    "RankedRun",
    "Run",
    "build_qrels",
    "compute_metrics",
    "judge_run",
    "metric_name",
    "prepare_frame",
    "prepare_split",
    "relevance_frame",
    "rescale_relevance",
    "sample_queries",
    "read_qrels",
    "read_run",
    "save_trec_files",
    "trec_rank_order",
    "write_qrels",
    "write_run",
]
