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

    Raises DataError (no dataset, or not one product could be stored), ModelMismatch (another model than
    the collection's, named with it), ConfigError (another dataset, images folder or field weights than
    the collection was built with), CollectionInUse (another process has the collection), OutOfSpace (the
    disk has no room for the next step; what was written is kept), StoreUnreachable. Ctrl-C saves the
    state and re-raises KeyboardInterrupt. Decode workers are spawned processes that import the main
    module: a script calling `ingest_dataset` with workers > 0 needs the usual `if __name__ == "__main__":`
    guard.
    """
    started = time.perf_counter()
    with open_store(config.store, api_key=config.api_key) as store, _state_lock(config):
        store.hold(config.collection, create=True)  # before anything of it is read: "in use" at once
        existing = _stored_record(store, config.collection)
        count = store.count(existing.name) if existing is not None else 0  # an empty one may change images
        dataset, corpora = _open_dataset(config, existing if count else None)
        record, encoder, created, seconds = _collection(config, store, dataset, corpora, existing, count)
        state = IngestState.load(config.resolved_state_dir() / STATE_FILE, record.name, record.created_at,
                                 dataset_fingerprint(dataset.root))
        resumed_from = {c: state.cursor(c).done for c in corpora} if state.resumed else {}
        workers = available_cpus() if config.workers is None else config.workers
        rejects = RejectsFile(config.resolved_rejects(), resume=state.resumed)
        setup = PipelineSetup(
            dataset=dataset, store=store, collection=record.name, encoder=encoder,
            field_weights=_field_weights(config, record), state=state, rejects=rejects,
            corpora=corpora, batch_size=config.batch_size, workers=max(workers, 1),
            checkpoint_s=config.checkpoint_s, images_dir=images_root(dataset), task=NULL_PROGRESS.task(""),
            sizes={c: state.cursor(c).done if state.cursor(c).complete else dataset.count_products(c)
                   for c in corpora},
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
        stored = {c: store.count(record.name, corpus=c) for c in corpora}
        total, location = store.count(record.name), store.location
    if total == 0 and rejects.counts:
        raise _nothing_stored(dataset, rejects)
    counts = tuple(_corpus_counts(c, tally, stored[c], state) for c in corpora)
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
        images_dir=setup.images_dir, retried=sum(c.retried for c in counts),
        recovered=sum(c.recovered for c in counts),
    )


def _state_lock(config: IngestConfig) -> contextlib.AbstractContextManager[object]:
    """A server collection's ingest state (cursor, rejects) is a local folder that two ingests must not
    share; an embedded collection's lock covers its state already."""
    if not config.server:
        return contextlib.nullcontext()
    state_dir = config.resolved_state_dir()
    return Lock(state_dir / "ingest.lock", f"the ingest state of collection {config.collection} ({state_dir})")


def images_root(dataset: Dataset) -> Path:
    """The dataset's images folder with symlinks resolved: what a collection records, and what the
    payload's image paths are relative to."""
    return Path(os.path.realpath(dataset.images_dir))


def _open_dataset(config: IngestConfig, existing: CollectionRecord | None) -> tuple[Dataset, tuple[int, ...]]:
    """The dataset and the corpora to ingest. Images: `config.images_dir`, else the folder the collection
    recorded (`existing`: a collection that holds products), else the dataset's default
    (`default_images_dir`)."""
    images_dir = config.images_dir
    recorded = existing.ingest.get("images_dir") if existing is not None else None
    if images_dir is None and recorded:
        images_dir = Path(recorded)
    dataset = open_dataset(config.data.resolve(), images_dir=images_dir.resolve() if images_dir else None)
    corpora = tuple(c for c in config.corpora if c in dataset.corpora)
    if not corpora:
        raise DataError(f"{config.data} holds none of the corpora {config.corpora}", DATA_HINT)
    return dataset, corpora


def _corpus_counts(corpus: int, tally: Tally, stored: int, state: IngestState) -> CorpusCounts:
    written = tally.written.get(corpus, 0)
    return CorpusCounts(corpus, written, stored - written, tally.rejected.get(corpus, 0), state.cursor(corpus).done,
                        state.cursor(corpus).complete, retried=tally.retried.get(corpus, 0),
                        recovered=tally.recovered.get(corpus, 0))


def _nothing_stored(dataset: Dataset, rejects: RejectsFile) -> DataError:
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(rejects.counts.items()))
    hint = "fix the products listed there and run the same command again: it retries them"
    if {"missing-image", "image-outside-folder"} & set(rejects.counts):
        hint = (f"images are read from {dataset.images_dir}: put them there or pass --images-dir DIR, then run "
                "the same command again (it retries the rejected products)")
    return DataError(f"not one product of {dataset.root} could be stored: {sum(rejects.counts.values()):,} "
                     f"rejected ({reasons}; see {rejects.path})", hint)


def _collection(
    config: IngestConfig, store: VectorStore, dataset: Dataset, corpora: tuple[int, ...],
    existing: CollectionRecord | None, count: int,
) -> tuple[CollectionRecord, Encoder, bool, dict[str, float]]:
    """The collection to fill — `existing` (holding `count` points) checked against this ingest, or
    created — the encoder, whether the collection is new, and the seconds the model took to load."""
    weights = _field_weights(config, existing)
    if existing is not None:
        _check_same_source(existing, dataset, weights, config.storage)
        if not _same_images(existing, dataset, count):
            log.warning("collection %s holds no product yet: re-created for the images in %s", existing.name,
                        images_root(dataset))
            store.drop(existing.name)
            config = dataclasses.replace(config, storage=existing.storage)  # the same storage again
            existing = None
    if existing is None:
        for corpus in corpora:  # a dataset that cannot be read fails here, before a collection exists
            dataset.count_products(corpus)
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


def _same_images(record: CollectionRecord, dataset: Dataset, count: int) -> bool:
    """Whether the collection's payload image paths are relative to this dataset's images folder. An
    empty collection (e.g. every product was a `missing-image` reject) may change folders: False; a
    collection with products refuses another folder (ConfigError)."""
    recorded, wanted = record.ingest.get("images_dir"), images_root(dataset)
    if not recorded or Path(str(recorded)) == wanted:
        return True
    if count == 0:
        return False
    raise ConfigError(
        f"collection {record.name!r} holds {count:,} products whose images are in {recorded}, not {wanted}",
        f"pass --images-dir {recorded} (or leave it out), or drop the collection first "
        f"(`gcl-vdb collections drop {record.name}`)")


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
        ingest={"layout": dataset.layout, "images_dir": str(images_root(dataset)), "batch_size": config.batch_size,
                "corpora": list(config.corpora), "image_size": encoder.image_size,
                "extra_columns": dataset.extra_columns()},
        identity=encoder.identity, progress=IngestProgress(False, {c: (0, None) for c in corpora}),
    )


def _run_pipeline(setup: PipelineSetup, workers: int, progress: Progress) -> Tally:
    """Run the pipeline with a progress bar (products of the corpora) and `workers` decode processes."""
    cursors = [setup.state.cursor(c) for c in setup.corpora]
    retrying = any(setup.rejects.retrying(c) for c in setup.corpora)
    pending, done = retrying or not all(c.complete for c in cursors), sum(c.done for c in cursors)
    total = sum(size or 0 for size in setup.sizes.values()) if pending else done
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
