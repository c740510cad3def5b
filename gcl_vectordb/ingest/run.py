"""`ingest(config)`: a Marqo-GS dataset's two corpora into one collection — resumable, idempotent.

    report = ingest(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                 model_ref="gcl-vdb-work/model"))

Steps: open the dataset and the store; check an existing collection against this ingest (same dataset,
same field weights, a model of the same dim) or create it (server: indexing deferred for the bulk load);
load the resume state; run the pipeline (`gcl_vectordb.ingest.pipeline`); build the index (`optimize`).
Durability: the embedded engine writes each upsert to its write-ahead log before returning, so points
survive a SIGKILL even before `flush()`; the cursor still moves only after a flush (see `state`).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gcl_vectordb.data.dataset import DATA_HINT, Dataset, open_dataset
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import CollectionNotFound, ConfigError, DataError
from gcl_vectordb.ingest.config import STATE_FILE, CorpusCounts, IngestConfig, IngestReport
from gcl_vectordb.ingest.decode import init_worker
from gcl_vectordb.ingest.pipeline import Pipeline, PipelineSetup, Tally
from gcl_vectordb.ingest.state import IngestState, RejectsFile, dataset_fingerprint
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import CollectionRecord, VectorStore, check_model, open_store

log = logging.getLogger(__name__)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def ingest(config: IngestConfig, progress: Progress = NULL_PROGRESS) -> IngestReport:
    """Load the dataset's corpora into `config.collection` (see the module docstring); returns the report.

    Raises DataError (no dataset), ModelMismatch (a model of another dim than the collection's),
    ConfigError (another dataset or other field weights than the collection was built with),
    CollectionInUse / StoreUnreachable (store). Ctrl-C saves the state and re-raises KeyboardInterrupt.
    """
    started = time.perf_counter()
    images_dir = config.images_dir.resolve() if config.images_dir is not None else None
    dataset = open_dataset(config.data.resolve(), images_dir=images_dir)
    corpora = tuple(c for c in config.corpora if c in dataset.corpora)
    if not corpora:
        raise DataError(f"{config.data} holds none of the corpora {config.corpora}", DATA_HINT)
    seconds: dict[str, float] = {}
    with open_store(config.store, api_key=config.api_key) as store:
        existing = _stored_record(store, config.collection)
        if existing is not None:
            _check_same_source(existing, config, dataset)
            store.count(config.collection)  # takes the collection now: "in use" before the slow work
        clock = time.perf_counter()
        encoder = load_encoder(config.model_ref, device=config.device, batch_size=config.encoder_batch_size)
        seconds["model"] = time.perf_counter() - clock
        record = existing or _new_record(config, dataset, encoder)
        check_model(record, encoder.model_ref, encoder.dim)
        if existing is None:
            record = store.create_collection(record, shards=config.shards, replicas=config.replicas,
                                             bulk_load=config.server)
        state = IngestState.load(config.resolved_state_dir() / STATE_FILE, record.name, record.created_at,
                                 dataset_fingerprint(dataset.root))
        resumed_from = {c: state.cursor(c).done for c in corpora} if state.resumed else {}
        done_before = {c: state.cursor(c).done for c in corpora if state.cursor(c).complete}
        workers = available_cpus() if config.workers is None else config.workers
        rejects = RejectsFile(config.resolved_rejects(), resume=state.resumed)
        try:
            clock = time.perf_counter()
            tally = _run_pipeline(config, dataset, store, encoder, state, rejects, corpora, workers, progress)
            seconds["pipeline"] = time.perf_counter() - clock
        finally:
            rejects.close()
        if config.build_index:
            clock = time.perf_counter()
            store.optimize(record.name, progress=progress)
            seconds["index"] = time.perf_counter() - clock
        total = store.count(record.name)
    seconds.update(tally.seconds)
    seconds["total"] = time.perf_counter() - started
    for corpus, done in done_before.items():  # completed by an earlier run: skipped whole, all present
        tally.add(tally.present, corpus, done)
    return _report(config, record, existing is None, tally, state, rejects, corpora, resumed_from, seconds,
                   total, workers, encoder)


def _stored_record(store: VectorStore, name: str) -> CollectionRecord | None:
    try:
        return store.get_record(name)
    except CollectionNotFound:
        return None


def _check_same_source(record: CollectionRecord, config: IngestConfig, dataset: Dataset) -> None:
    """A collection holds one dataset with one set of field weights: refuse to mix in another."""
    drop = f"ingest into another collection, or drop this one first (`gcl-vdb collections drop {record.name}`)"
    if record.dataset_root is not None and Path(record.dataset_root) != dataset.root:
        raise ConfigError(f"collection {record.name!r} was built from {record.dataset_root}, not {dataset.root}",
                          drop)
    stored = {f: float(record.field_weights.get(f, 0.0)) for f in config.field_weights}
    if any(not math.isclose(stored[f], w, abs_tol=1e-9) for f, w in config.field_weights.items()):
        raise ConfigError(f"collection {record.name!r} was built with field weights {_weights(stored)}, "
                          f"not {_weights(config.field_weights)}", drop)


def _weights(weights: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in weights.items())


def _new_record(config: IngestConfig, dataset: Dataset, encoder: Encoder) -> CollectionRecord:
    return CollectionRecord(
        config.collection, model_ref=encoder.model_ref, dim=encoder.dim, field_weights=dict(config.field_weights),
        dataset_root=str(dataset.root),
        ingest={"layout": dataset.layout, "images_dir": str(dataset.images_dir), "batch_size": config.batch_size,
                "corpora": list(config.corpora), "image_size": encoder.image_size},
    )


def _run_pipeline(
    config: IngestConfig, dataset: Dataset, store: VectorStore, encoder: Encoder, state: IngestState,
    rejects: RejectsFile, corpora: tuple[int, ...], workers: int, progress: Progress,
) -> Tally:
    pending = [c for c in corpora if not state.cursor(c).complete]
    total = sum(dataset.count_products(c) for c in corpora)
    task = progress.task(f"ingesting into {config.collection}", total=total, unit="points")
    task.update(completed=sum(state.cursor(c).done for c in corpora))
    setup = PipelineSetup(
        dataset=dataset, store=store, collection=config.collection, encoder=encoder,
        field_weights=config.field_weights, state=state, rejects=rejects, corpora=corpora,
        batch_size=config.batch_size, workers=max(workers, 1), checkpoint_s=config.checkpoint_s,
        images_dir=str(dataset.images_dir), task=task,
    )
    pool = None
    if workers > 0 and pending:
        # spawn: forking a process that runs ORT/torch threads is unsafe; workers import little
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(encoder.preprocessor, os.getpid()))
    try:
        return Pipeline(setup, pool).run()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        task.update(completed=total)
        task.close()


def _report(
    config: IngestConfig, record: CollectionRecord, created: bool, tally: Tally, state: IngestState,
    rejects: RejectsFile, corpora: tuple[int, ...], resumed_from: dict[int, int], seconds: dict[str, float],
    total: int, workers: int, encoder: Encoder,
) -> IngestReport:
    counts = tuple(
        CorpusCounts(c, tally.written.get(c, 0), tally.present.get(c, 0), tally.rejected.get(c, 0),
                     state.cursor(c).done, state.cursor(c).complete)
        for c in corpora
    )
    written = sum(c.written for c in counts)
    present = sum(c.present for c in counts)
    return IngestReport(
        collection=record.name, store=config.store, model_ref=encoder.model_ref, dim=encoder.dim,
        created=created, points_written=written, points_present=present, points_total=total,
        corpora=counts, rejects=dict(sorted(rejects.counts.items())), new_rejects=sum(c.rejected for c in counts),
        rejects_file=rejects.path, state_file=state.path, resumed_from=resumed_from,
        seconds={k: round(v, 4) for k, v in seconds.items()},
        points_per_s=written / seconds["pipeline"] if seconds.get("pipeline") else 0.0,
        index_built=config.build_index, workers=workers,
        missing_corpora=tuple(c for c in config.corpora if c not in corpora),
    )
