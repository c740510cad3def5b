"""`evaluate`: the GCL protocol run through the vector store, split by split.

Per split: read the split table and apply the protocol (`protocol.prepare_split`), embed the test
queries with the model that built the collection, retrieve the top-k of each through the store (exact
search, filter corpus == the split's corpus, limit k, the chosen named vector), judge the run
(`judge_run`) and compute the metrics. Optionally: the same with HNSW (`approx`), TREC files of the run
and ground truth, and the numpy brute-force check. `vector="bm25"` ranks by BM25 of the query's words in
the titles (IDF over the split's corpus; no model is loaded), `"hybrid"` fuses the fused-vector and the
BM25 rankings (`fusion`); everything else is the same protocol. Exact search reads the original vectors
whatever the collection's quantization, so an int8 or binary collection gives the figures of a float32
one; float16 originals round the scores, and evaluate warns (`FLOAT16_NOTE`).

    report = evaluate(EvalConfig(splits=("novel-doc",), collection="gs10m", store="gcl-vdb-store"))
    report.splits[0].headline()["ndcg@10"]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np

from gcl_vectordb import __version__
from gcl_vectordb.data import SPLITS, Dataset, open_dataset
from gcl_vectordb.data.tables import DEFAULT_WEIGHT_COLUMN
from gcl_vectordb.domain import FusionMethod, SearchMode
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import ConfigError, GclVdbError
from gcl_vectordb.evaluation.bruteforce import bruteforce_check
from gcl_vectordb.evaluation.judging import Run, judge_run
from gcl_vectordb.evaluation.metrics import MetricTable, compute_metrics
from gcl_vectordb.evaluation.protocol import (
    DEFAULT_SEED,
    DEFAULT_TOP_K,
    DEFAULT_TOP_Q,
    PreparedSplit,
    prepare_split,
)
from gcl_vectordb.evaluation.report import EvalReport, EvalSettings, SplitReport, SplitTimings
from gcl_vectordb.evaluation.trec import save_trec_files
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import (
    CollectionRecord,
    SearchRequest,
    VectorStore,
    open_store,
    require_complete,
    require_model,
)

log = logging.getLogger(__name__)

DocumentVector = Literal["fused", "image", "title", "bm25", "hybrid"]
DOCUMENT_VECTORS: tuple[str, ...] = ("fused", "image", "title", "bm25", "hybrid")
RUN_TAG = "gcl-vdb"
FLOAT16_NOTE = ("collection %r stores the %s vectors as float16: the engine rounds vectors and queries to "
                "float16, so scores differ from float32 by ~1e-4 and near-ties may rank differently (the brute-force "
                "check computes in float32); compare figures with a float32 collection, not across the two")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how. `splits`: split names, or ("all",) for the four Marqo-GS splits.

    `data`: the dataset folder; None takes the collection record's `dataset_root`, then `default_data`.
    `k` is both the retrieval depth and the ground-truth cap (the official code uses one top_k for
    both). `approx` retrieves with the HNSW index (and also runs exact search, to report the cost).
    `batch_size`: queries per embedding batch and per store round trip. `fusion`: how `vector="hybrid"`
    fuses its two rankings. A collection whose ingest has not completed is refused (`PartialCollection`)
    unless `allow_partial`, which evaluates it with a warning kept in the report.
    """

    splits: tuple[str, ...] = ("all",)
    collection: str = "gs10m"
    store: str = "gcl-vdb-store"
    api_key: str | None = field(default=None, repr=False)
    data: Path | None = None
    default_data: Path | None = None
    top_q: int = DEFAULT_TOP_Q
    k: int = DEFAULT_TOP_K
    vector: DocumentVector = "fused"
    approx: bool = False
    hnsw_ef: int | None = None
    seed: int = DEFAULT_SEED
    save_run: Path | None = None
    check_bruteforce: bool = False
    batch_size: int = 256
    weight_column: str = DEFAULT_WEIGHT_COLUMN
    fusion: FusionMethod = FusionMethod.rrf
    allow_partial: bool = False

    def __post_init__(self) -> None:
        names = tuple(s.name for s in SPLITS) if "all" in self.splits else tuple(dict.fromkeys(self.splits))
        if not names:
            raise ConfigError("no split to evaluate", f"use --split with one of: all, {_split_names()}")
        for name in names:
            if name not in {s.name for s in SPLITS}:
                raise ConfigError(f"unknown split {name!r}", f"use one of: all, {_split_names()}")
        object.__setattr__(self, "splits", names)
        if self.vector not in DOCUMENT_VECTORS:
            raise ConfigError(f"unknown document vector {self.vector!r}", f"use {', '.join(DOCUMENT_VECTORS)}")
        for name in ("top_q", "k", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.hnsw_ef is not None and self.hnsw_ef < 1:
            raise ConfigError(f"hnsw_ef must be ≥ 1, got {self.hnsw_ef}")
        object.__setattr__(self, "fusion", FusionMethod.parse(self.fusion))
        if self.check_bruteforce and self.mode.lexical:
            raise ConfigError(f"the brute-force check compares dense rankings, not {self.vector}",
                              "leave --check-bruteforce out, or evaluate --vector fused|image|title")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in 0 … 4294967295 (2³² − 1), got {self.seed}",
                              "the protocol samples with seed 1 (--seed 1)")

    @property
    def mode(self) -> SearchMode:
        """The search mode of `vector` (every document vector is one)."""
        return SearchMode(self.vector)


def _split_names() -> str:
    return ", ".join(s.name for s in SPLITS)


def evaluate(config: EvalConfig, progress: Progress = NULL_PROGRESS) -> EvalReport:
    """Evaluate every split of `config` through the store; see the module docstring."""
    started = time.perf_counter()
    with open_store(config.store, api_key=config.api_key) as store:
        store.hold(config.collection)
        record = store.get_record(config.collection)
        partial = require_complete(record, allow_partial=config.allow_partial)
        if partial is not None:
            log.warning("%s", partial)
        dataset = open_dataset(_data_root(config, record))
        splits = [dataset.split(name) for name in config.splits]  # every split file checked before work
        if config.mode.lexical:
            record.require_bm25(config.mode)
        encoder = None
        if config.mode.dense:  # BM25 alone needs no model
            encoder = load_encoder(record.model_ref, batch_size=config.batch_size)
            require_model(record, encoder.identity)
        datatype = _dense_datatype(record, config)
        if datatype == "float16":
            log.warning(FLOAT16_NOTE, record.name, "fused" if config.mode is SearchMode.hybrid else config.vector)
        reports = tuple(
            _evaluate_split(store, record, encoder, dataset, split.name, config, progress) for split in splits
        )
    settings = EvalSettings(
        model_ref=record.model_ref, collection=record.name, store=store.location, dataset=str(dataset.root),
        vector=config.vector, search="hnsw" if config.approx else "exact", top_q=config.top_q, k=config.k,
        seed=config.seed, weight_column=config.weight_column, versions=library_versions(),
        fusion=config.fusion.value if config.mode is SearchMode.hybrid else None,
        storage=record.storage.name, datatype=datatype,
        collection_status=record.status(), allow_partial=config.allow_partial,
    )
    return EvalReport(settings, reports, time.perf_counter() - started, () if partial is None else (partial,))


def _dense_datatype(record: CollectionRecord, config: EvalConfig) -> str | None:
    """The stored datatype of the dense vector the evaluation searches (`fused` for hybrid; None for bm25)."""
    dense = "fused" if config.mode is SearchMode.hybrid else config.vector
    storage = record.storage.vectors.get(dense)
    return storage.datatype.value if storage is not None else None


def _data_root(config: EvalConfig, record: CollectionRecord) -> Path:
    root = config.data or (Path(record.dataset_root) if record.dataset_root else None) or config.default_data
    if root is None:
        raise ConfigError(f"collection {record.name!r} records no dataset folder", "pass --data DIR")
    return root


def library_versions() -> dict[str, str]:
    """Versions of what decides the figures: gcl-vdb, the engine, the runtime, numpy, pandas."""
    versions = {"gcl-vdb": __version__}
    for package in ("qdrant-edge-py", "qdrant-client", "onnxruntime", "numpy", "pandas"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _evaluate_split(
    store: VectorStore, record: CollectionRecord, encoder: Encoder | None, dataset: Dataset, name: str,
    config: EvalConfig, progress: Progress,
) -> SplitReport:
    clock = time.perf_counter()
    prepared = prepare_split(dataset, name, top_q=config.top_q, top_k=config.k, seed=config.seed,
                             weight_column=config.weight_column)
    prepare_s, clock = _lap(clock)
    vectors = None if encoder is None else embed_queries(encoder, prepared.queries, config.batch_size, progress,
                                                          name)
    embed_s, clock = _lap(clock)
    run = retrieve(store, record.name, prepared, vectors, config, exact=not config.approx, progress=progress)
    search_s, clock = _lap(clock)
    table = score_run(prepared, run, config.k)
    metrics_s, clock = _lap(clock)
    exact_run, exact_table, exact_s, overlap = run, None, None, None
    if config.approx:
        exact_run = retrieve(store, record.name, prepared, vectors, config, exact=True, progress=progress)
        exact_s, clock = _lap(clock)
        exact_table, overlap = score_run(prepared, exact_run, config.k), top_k_overlap(run, exact_run)
    check = None
    if config.check_bruteforce:
        assert vectors is not None  # EvalConfig allows the check for dense vectors only
        check = bruteforce_check(store, record.name, dataset, prepared, vectors, exact_run, vector=config.vector,
                                 k=config.k, progress=progress)
    files = _save_run(config.save_run, name, prepared, run) if config.save_run is not None else ()
    log.info("%s: %d queries, NDCG@10 %.4f", name, len(prepared.queries), table.mean()["ndcg@10"])
    return SplitReport(
        split=name, corpus=prepared.corpus, search="hnsw" if config.approx else "exact",
        n_queries=len(prepared.queries), n_distinct_queries=prepared.n_distinct_queries,
        n_judgments=sum(map(len, prepared.qrels.values())), metrics=table,
        timings=SplitTimings(prepare_s, embed_s, search_s, metrics_s, exact_s), exact_metrics=exact_table,
        hnsw_overlap=overlap, bruteforce=check, run_files=files,
    )


def _lap(start: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - start, now


def embed_queries(encoder: Encoder, queries: tuple[str, ...], batch_size: int, progress: Progress,
                  label: str = "") -> np.ndarray:
    """Text embeddings `(Q, dim)` float32 of the queries, batch by batch."""
    task = progress.task(f"{label}: embedding queries", total=len(queries), unit="queries")
    chunks = []
    for start in range(0, len(queries), batch_size):
        chunks.append(encoder.encode_texts(list(queries[start:start + batch_size])))
        task.advance(len(chunks[-1]))
    task.close()
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), dtype=np.float32)


def retrieve(
    store: VectorStore, collection: str, prepared: PreparedSplit, vectors: np.ndarray | None, config: EvalConfig,
    *, exact: bool, progress: Progress = NULL_PROGRESS,
) -> Run:
    """Top-k of every query through the store: `config.vector`, filter corpus == the split's, limit k;
    `{query: [(product_id, score), ...]}` in the store's order (best first). `vectors` `(Q, dim)` are the
    query embeddings (None for bm25, which searches by the query texts)."""
    kind = "exact" if exact else "HNSW"
    task = progress.task(f"{prepared.split.name}: {kind} search", total=len(prepared.queries), unit="queries")
    run: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(prepared.queries), config.batch_size):
        queries = prepared.queries[start:start + config.batch_size]
        requests = [
            SearchRequest(None if vectors is None else vectors[start + i], mode=config.mode, limit=config.k,
                          corpus=prepared.corpus, exact=exact, with_payload=False,
                          hnsw_ef=None if exact else config.hnsw_ef, text=query, fusion=config.fusion)
            for i, query in enumerate(queries)
        ]
        for query, hits in zip(queries, store.search_batch(collection, requests), strict=True):
            run[query] = [(hit.product_id, hit.score) for hit in hits]
        task.advance(len(requests))
    task.close()
    return run


def score_run(prepared: PreparedSplit, run: Run, k: int) -> MetricTable:
    """Judge `run` against the split's ground truth (trec_eval's ranking, depth k) → metrics."""
    return compute_metrics(judge_run(run, prepared.qrels, queries=prepared.queries, depth=k))


def top_k_overlap(approx: Run, exact: Run) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (1.0 where exact is empty)."""
    shares = [len({doc for doc, _ in approx.get(query, [])} & {doc for doc, _ in pairs}) / len(pairs) if pairs
              else 1.0 for query, pairs in exact.items()]
    return float(np.mean(shares)) if shares else 1.0


def _save_run(directory: Path, name: str, prepared: PreparedSplit, run: Run) -> tuple[Path, ...]:
    """run.<split>.trec, qrels.<split>.trec (keyed by TREC query id) and queries.<split>.tsv (id → text)."""
    rename = dict(zip(prepared.queries, prepared.query_ids, strict=True))
    renamed = {rename[query]: pairs for query, pairs in run.items()}
    try:
        run_path, qrels_path = save_trec_files(directory, name, renamed, prepared.trec_qrels(), RUN_TAG)
        queries_path = directory / f"queries.{name}.tsv"
        queries_path.write_text(
            "".join(f"{qid}\t{text}\n" for text, qid in rename.items()), encoding="utf-8"
        )
    except OSError as exc:
        raise GclVdbError(f"cannot write the run files into {directory}: {exc}", "check --save-run DIR") from exc
    return run_path, qrels_path, queries_path


__all__ = ["DOCUMENT_VECTORS", "EvalConfig", "embed_queries", "evaluate", "retrieve", "score_run"]
