"""What `evaluate` returns: per split the metric tables, timings and checks; the settings that made them.

`EvalReport.to_dict()` is the JSON report (full @k tables, settings, versions); `csv_rows()` the CSV one
(one row per split and search kind, every metric mean as a column).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gcl_vectordb.errors import GclVdbError
from gcl_vectordb.evaluation.metrics import HEADLINE, MetricTable


@dataclass(frozen=True)
class SplitTimings:
    """Wall seconds of each stage of one split. `exact_search_s`: the exact reference run of --approx."""

    prepare_s: float  # read the split table, rel, sampling, ground truth
    embed_s: float  # query embedding
    search_s: float  # retrieval through the store (the evaluated run), hits → (product, score) pairs
    metrics_s: float  # judging and metrics
    exact_search_s: float | None = None

    @property
    def total_s(self) -> float:
        return self.prepare_s + self.embed_s + self.search_s + self.metrics_s + (self.exact_search_s or 0.0)


@dataclass(frozen=True)
class BruteForceCheck:
    """Qdrant's exact run against a numpy brute force over the stored vectors of the split's corpus.

    `rankings_identical`: every query's Qdrant list is a top-k of the numpy scores, document by document,
    up to swaps among scores within `score_tolerance` (ties). `max_score_difference`: largest
    |Qdrant score − numpy score| of one document. `max_metric_difference`: largest per-query difference
    of any metric between the two runs (each ranked as trec_eval ranks it); passes at ≤ 1e-9.
    """

    n_queries: int
    n_documents: int
    rankings_identical: bool
    mismatched_queries: tuple[str, ...]
    max_score_difference: float
    max_metric_difference: float
    score_tolerance: float
    metric_tolerance: float = 1e-9

    @property
    def passed(self) -> bool:
        return self.rankings_identical and self.max_metric_difference <= self.metric_tolerance


@dataclass(frozen=True)
class SplitReport:
    """One split's evaluation. `metrics` is the evaluated run (exact, or HNSW under --approx); with
    --approx, `exact_metrics` is the exact run and `hnsw_overlap` the mean share of each exact top-k
    that the HNSW top-k also found."""

    split: str
    corpus: int
    search: str  # "exact" | "hnsw"
    n_queries: int
    n_distinct_queries: int
    n_judgments: int
    metrics: MetricTable
    timings: SplitTimings
    exact_metrics: MetricTable | None = None
    hnsw_overlap: float | None = None
    bruteforce: BruteForceCheck | None = None
    run_files: tuple[Path, ...] = ()

    def headline(self) -> dict[str, float]:
        return self.metrics.headline()

    def delta(self) -> dict[str, float] | None:
        """HNSW − exact for every metric mean (negative: quality the index costs); None without --approx."""
        if self.exact_metrics is None:
            return None
        exact = self.exact_metrics.mean()
        return {name: value - exact[name] for name, value in self.metrics.mean().items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "split": self.split, "corpus": self.corpus, "search": self.search, "n_queries": self.n_queries,
            "n_distinct_queries": self.n_distinct_queries, "n_judgments": self.n_judgments,
            "metrics": self.metrics.to_dict(),
            "seconds": {"prepare": self.timings.prepare_s, "embed": self.timings.embed_s,
                        "search": self.timings.search_s, "metrics": self.timings.metrics_s,
                        "exact_search": self.timings.exact_search_s, "total": self.timings.total_s},
        }
        if self.exact_metrics is not None:
            out["exact_metrics"] = self.exact_metrics.to_dict()
            out["hnsw_minus_exact"] = self.delta()
            out["hnsw_overlap"] = self.hnsw_overlap
        if self.bruteforce is not None:
            out["bruteforce"] = {**vars(self.bruteforce), "mismatched_queries": list(self.bruteforce.mismatched_queries),
                                 "passed": self.bruteforce.passed}
        if self.run_files:
            out["run_files"] = [str(path) for path in self.run_files]
        return out


@dataclass(frozen=True)
class EvalSettings:
    """What produced the figures: model, collection, data, protocol parameters, library versions, and how
    the collection stores the evaluated vector (`storage` preset, `datatype`: exact search reads the
    original vectors, so a quantized copy changes nothing, but float16 originals round every score)."""

    model_ref: str
    collection: str
    store: str
    dataset: str
    vector: str
    search: str  # "exact" | "hnsw"
    top_q: int
    k: int
    seed: int
    weight_column: str
    versions: dict[str, str] = field(default_factory=dict)
    fusion: str | None = None  # how vector "hybrid" fused its rankings
    storage: str = "ram"
    datatype: str | None = "float32"  # of the dense vector searched; None for bm25
    collection_status: str = "complete"  # the collection's ingest progress (`CollectionRecord.status`)
    allow_partial: bool = False


@dataclass(frozen=True)
class EvalReport:
    """The evaluation of a collection. `warnings`: what makes the figures doubtful (an evaluation of a
    partly ingested collection under --allow-partial), kept in the JSON report."""

    settings: EvalSettings
    splits: tuple[SplitReport, ...]
    seconds: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: settings, warnings, total seconds, per split the full tables and timings."""
        return {"settings": vars(self.settings) | {"versions": dict(self.settings.versions)},
                "warnings": list(self.warnings), "seconds": self.seconds,
                "splits": {s.split: s.to_dict() for s in self.splits}}

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per split (and per search kind under --approx): headline first, then every mean."""
        rows = []
        for split in self.splits:
            tables = [(split.search, split.metrics)]
            if split.exact_metrics is not None:
                tables.append(("exact", split.exact_metrics))
            for search, table in tables:
                means = table.mean()
                ordered = {name: means[name] for name in HEADLINE} | means
                rows.append({"split": split.split, "search": search, "queries": split.n_queries,
                             "model": self.settings.model_ref, "collection": self.settings.collection,
                             "seed": self.settings.seed, **ordered})
        return rows

    def write_json(self, path: Path) -> Path:
        """The JSON report into `path`."""
        return _write(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def write_csv(self, path: Path) -> Path:
        """The CSV report into `path`."""
        rows = self.csv_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["split"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return _write(path, buffer.getvalue())


def _write(path: Path, text: str) -> Path:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GclVdbError(f"cannot write the report to {path}: {exc.strerror or exc}",
                          "check that the folder exists and is writable") from None
    return path
