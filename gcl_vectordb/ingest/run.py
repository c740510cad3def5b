"""`ingest_dataset(config)`: a Marqo-GS dataset's two corpora into one collection — resumable, idempotent.

    report = ingest_dataset(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                         model_ref="gcl-vdb-work/model"))

Steps: open the dataset and the store; take the collection (embedded: its lock, before anything of it is
read; server: the lock of the local ingest state), so that a second ingest, query or drop is refused at
once; check an existing collection against this ingest (same dataset, same field weights, the same model:
`require_model`) or create it with the model's identity (server: indexing deferred for the bulk load);
load the resume state; run the pipeline (`gcl_vectordb.ingest.pipeline`), which saves the progress in the
collection's record at every checkpoint; build the index (`optimize`).
Durability: the embedded engine writes each upsert to its write-ahead log before returning, so points
survive a SIGKILL even before `flush()`; the cursor still moves only after a flush (see `state`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gcl_vectordb.data.dataset import DATA_HINT, Dataset
from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import CollectionNotFound, ConfigError, DataError
from gcl_vectordb.files import available_cpus
from gcl_vectordb.ingest.config import (
    STATE_FILE,
    CorpusCounts,
    IngestConfig,
    IngestReport,
)
from gcl_vectordb.ingest.decode import init_worker
from gcl_vectordb.ingest.pipeline import Pipeline, PipelineSetup, Tally
from gcl_vectordb.ingest.state import IngestState, RejectsFile, dataset_fingerprint
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import CollectionRecord, IngestProgress, VectorStore, open_store, require_model
from gcl_vectordb.store.lock import Lock
from gcl_vectordb.store.storage import StorageOptions

log = logging.getLogger(__name__)


def ingest_dataset(config: IngestConfig, progress: Progress = NULL_PROGRESS) -> IngestReport:
    """Load the dataset's corpora into `config.collection` (see the module docstring); returns the report.

    Raises DataError (no dataset), ModelMismatch (another model than the collection's, named with it),
    ConfigError (another dataset or other field weights than the collection was built with),
    CollectionInUse (another process has the collection), OutOfSpace (the disk has no room for the next
    step; what was written is kept), StoreUnreachable. Ctrl-C saves the state and re-raises KeyboardInterrupt.
    Decode workers are spawned processes that import the main module: a script calling `ingest_dataset` with
    workers > 0 needs the usual `if __name__ == "__main__":` guard.
    """
    started = time.perf_counter()
    images_dir = config.images_dir.resolve() if config.images_dir is not None else None
    dataset = open_dataset(config.data.resolve(), images_dir=images_dir)
    corpora = tuple(c for c in config.corpora if c in dataset.corpora)
    if not corpora:
        raise DataError(f"{config.data} holds none of the corpora {config.corpora}", DATA_HINT)
    with open_store(config.store, api_key=config.api_key) as store, _state_lock(config):
        store.hold(config.collection, create=True)
        record, encoder, created, seconds = _collection(config, store, dataset, corpora)
        state = IngestState.load(config.resolved_state_dir() / STATE_FILE, record.name, record.created_at,
                                 dataset_fingerprint(dataset.root))
        resumed_from = {c: state.cursor(c).done for c in corpora} if state.resumed else {}
        done_before = {c: state.cursor(c).done for c in corpora if state.cursor(c).complete}
        workers = available_cpus() if config.workers is None else config.workers
        rejects = RejectsFile(config.resolved_rejects(), resume=state.resumed)
        pending = [c for c in corpora if not state.cursor(c).complete]
        setup = PipelineSetup(
            dataset=dataset, store=store, collection=record.name, encoder=encoder,
            field_weights=_field_weights(config, record), state=state, rejects=rejects,
            corpora=corpora, batch_size=config.batch_size, workers=max(workers, 1),
            checkpoint_s=config.checkpoint_s, images_dir=str(dataset.images_dir), task=NULL_PROGRESS.task(""),
            sizes={c: dataset.count_products(c) if c in pending else state.cursor(c).done for c in corpora},
        )
        try:
            clock = time.perf_counter()
            tally = _run_pipeline(setup, workers, progress)
            seconds["pipeline"] = time.perf_counter() - clock
        finally:
            rejects.close()
        if config.build_index:
            clock = time.perf_counter()
            store.optimize(record.name, progress=progress)
            seconds["index"] = time.perf_counter() - clock
        total, location = store.count(record.name), store.location
    for corpus, done in done_before.items():  # completed by an earlier run: skipped whole, all present
        tally.add(tally.present, corpus, done)
    counts = tuple(CorpusCounts(c, tally.written.get(c, 0), tally.present.get(c, 0), tally.rejected.get(c, 0),
                                state.cursor(c).done, state.cursor(c).complete) for c in corpora)
    written = sum(c.written for c in counts)
    seconds |= tally.seconds | {"total": time.perf_counter() - started}
    return IngestReport(
        collection=record.name, store=location, model_ref=encoder.model_ref, dim=encoder.dim, created=created,
        points_written=written, points_present=sum(c.present for c in counts), points_total=total,
        corpora=counts, rejects=dict(sorted(rejects.counts.items())), new_rejects=sum(c.rejected for c in counts),
        rejects_file=rejects.path, state_file=state.path, resumed_from=resumed_from,
        seconds={k: round(v, 4) for k, v in seconds.items()},
        points_per_s=written / seconds["pipeline"] if seconds["pipeline"] else 0.0,
        index_built=config.build_index, workers=workers,
        missing_corpora=tuple(c for c in config.corpora if c not in corpora),
    )


def _state_lock(config: IngestConfig) -> contextlib.AbstractContextManager[object]:
    """A server collection's ingest state (cursor, rejects) is a local folder that two ingests must not
    share; an embedded collection's lock covers its state already."""
    if not config.server:
        return contextlib.nullcontext()
    state_dir = config.resolved_state_dir()
    return Lock(state_dir / "ingest.lock", f"the ingest state of collection {config.collection} ({state_dir})")


def _collection(
    config: IngestConfig, store: VectorStore, dataset: Dataset, corpora: tuple[int, ...]
) -> tuple[CollectionRecord, Encoder, bool, dict[str, float]]:
    """The collection to fill — checked against this ingest, or created — the encoder, whether the
    collection is new, and the seconds the model took to load."""
    existing = _stored_record(store, config.collection)
    weights = _field_weights(config, existing)
    if existing is not None:
        _check_same_source(existing, dataset, weights, config.storage)
    clock = time.perf_counter()
    encoder = load_encoder(config.model_ref, device=config.device, batch_size=config.encoder_batch_size)
    seconds = {"model": time.perf_counter() - clock}
    if existing is None:
        record = store.create_collection(_new_record(config, dataset, encoder, weights, corpora),
                                         shards=config.shards, replicas=config.replicas, bulk_load=config.server)
        return record, encoder, True, seconds
    require_model(existing, encoder.identity)
    if existing.identity is None:  # created before identities were recorded, by this model_ref: record it
        log.warning("recording the identity of %s in collection %s", encoder.identity.short(), existing.name)
        existing = dataclasses.replace(existing, identity=encoder.identity)
        store.update_record(existing)
    return existing, encoder, False, seconds


def _stored_record(store: VectorStore, name: str) -> CollectionRecord | None:
    try:
        return store.get_record(name)
    except CollectionNotFound:
        return None


def _field_weights(config: IngestConfig, existing: CollectionRecord | None) -> FieldWeights:
    """The α of the fused vector: as asked, else the collection's (a resumed run), else the defaults."""
    if config.field_weights is not None:
        return config.field_weights
    return existing.field_weights if existing is not None else DEFAULT_FIELD_WEIGHTS


def _check_same_source(
    record: CollectionRecord, dataset: Dataset, weights: FieldWeights, storage: StorageOptions | None
) -> None:
    """A collection holds one dataset with one set of field weights, stored one way: refuse to mix in
    another, or to change the storage (fixed at creation)."""
    drop = f"ingest into another collection, or drop this one first (`gcl-vdb collections drop {record.name}`)"
    if record.dataset_root is not None and Path(record.dataset_root) != dataset.root:
        raise ConfigError(f"collection {record.name!r} was built from {record.dataset_root}, not {dataset.root}",
                          drop)
    if record.field_weights != weights:
        raise ConfigError(f"collection {record.name!r} was built with field weights {record.field_weights}, "
                          f"not {weights}", drop)
    if storage is not None and record.storage != storage:
        raise ConfigError(f"collection {record.name!r} is stored as {record.storage.name}, not {storage.name}",
                          f"storage is chosen when a collection is created: leave --storage out, or {drop}")


def _new_record(config: IngestConfig, dataset: Dataset, encoder: Encoder, weights: FieldWeights,
                corpora: tuple[int, ...]) -> CollectionRecord:
    return CollectionRecord(
        config.collection, model_ref=encoder.model_ref, dim=encoder.dim, field_weights=weights,
        dataset_root=str(dataset.root), storage=config.storage or StorageOptions(),
        ingest={"layout": dataset.layout, "images_dir": str(dataset.images_dir), "batch_size": config.batch_size,
                "corpora": list(config.corpora), "image_size": encoder.image_size},
        identity=encoder.identity, progress=IngestProgress(False, {c: (0, None) for c in corpora}),
    )


def _run_pipeline(setup: PipelineSetup, workers: int, progress: Progress) -> Tally:
    """Run the pipeline with a progress bar (products of the corpora) and `workers` decode processes."""
    cursors = [setup.state.cursor(c) for c in setup.corpora]
    pending, done = not all(c.complete for c in cursors), sum(c.done for c in cursors)
    total = sum(size or 0 for size in setup.sizes.values())
    task = progress.task(f"ingesting into {setup.collection}", total=total, unit="points")
    task.update(completed=done)
    pool = None
    if workers > 0 and pending:
        # spawn: forking a process that runs ORT/torch threads is unsafe; workers import little
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(setup.encoder.preprocessor, os.getpid()))
    try:
        tally = Pipeline(dataclasses.replace(setup, task=task), pool).run()
        task.update(completed=total)  # the bar counts rows read, a little more or less than the total
        return tally
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        task.close()
