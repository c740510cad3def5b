"""Evaluation: judge a retrieval run against graded ground truth and compute the protocol's metrics.

`judge_run(run, qrels)` → `JudgedRun` (dense arrays); `compute_metrics(judged)` → `MetricTable`
(per-query values, means, the protocol's headline); `trec` reads and writes standard TREC files.
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
from gcl_vectordb.evaluation.trec import read_qrels, read_run, save_trec_files, write_qrels, write_run

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_RBP_PS",
    "HEADLINE",
    "JudgedRun",
    "MetricTable",
    "Qrels",
    "RankedRun",
    "Run",
    "compute_metrics",
    "judge_run",
    "metric_name",
    "read_qrels",
    "read_run",
    "save_trec_files",
    "trec_rank_order",
    "write_qrels",
    "write_run",
]
