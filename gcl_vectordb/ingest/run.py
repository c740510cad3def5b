"""`ingest_dataset(config)`: a Marqo-GS dataset's two corpora into one collection — resumable, idempotent.

    report = ingest_dataset(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                         model_ref="gcl-vdb-work/model"))
    report = ingest_dataset(IngestConfig(collection="gs10m", embeddings=Path("gcl-vdb-work/embeddings")))

Two sources, one path: the dataset embedded on the fly (`ProductSource`), or embedding shards written by
`gcl-vdb embed` (`ShardSource`, every file verified before anything is written). Steps: open the store;
take the collection (embedded: its lock, before anything of it is read; server: the lock of the local
ingest state) for the whole command, so that a second ingest, query or drop is refused at once; check an
existing collection against this ingest (same dataset, same field weights, the same model:
`require_model`, with the model's identity or the shards' header) or create it with that identity
(server: indexing deferred for the bulk load); load the resume state; run the pipeline
(`gcl_vectordb.ingest.pipeline`), which saves the progress in the collection's record at every
checkpoint; build the index (`optimize`). The embedded store checks the free space before each write.
Durability: the embedded engine writes each upsert to its write-ahead log before returning, so points
survive a SIGKILL even before `flush()`; the cursor still moves only after a flush (see `state`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcl_vectordb.data.dataset import DATA_HINT, Dataset
from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights, ModelIdentity
from gcl_vectordb.encoders import Encoder, load_encoder
from gcl_vectordb.errors import CollectionNotFound, ConfigError, DataError
from gcl_vectordb.files import available_cpus
from gcl_vectordb.ingest.config import (
    STATE_FILE,
    CorpusCounts,
    IngestConfig,
    IngestReport,
)
from gcl_vectordb.ingest.pipeline import PipelineSetup, Source, Tally, run_pipeline
from gcl_vectordb.ingest.products import ProductSource, decode_pool, images_root
from gcl_vectordb.ingest.shard_format import Manifest, read_manifest, verify_manifest
from gcl_vectordb.ingest.shard_parts import ShardSource
from gcl_vectordb.ingest.state import IngestState, RejectsFile, dataset_fingerprint
from gcl_vectordb.ingest.store_sink import StoreSink
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import CollectionRecord, IngestProgress, VectorStore, open_store, require_model
from gcl_vectordb.store.lock import Lock
from gcl_vectordb.store.storage import StorageOptions

log = logging.getLogger(__name__)


def ingest_dataset(config: IngestConfig, progress: Progress = NULL_PROGRESS) -> IngestReport:
    """Load the dataset's corpora into `config.collection` (see the module docstring); returns the report.

    With `config.embeddings`, the points come from embedding shards (`gcl-vdb embed`) instead: no model
    runs, every file is verified first, and the collection's model must be the shards' model.

    Raises DataError (no dataset, or not one product could be stored; shards missing, truncated, corrupt
    or lacking columns), ModelMismatch (another model than the collection's, named with it), ConfigError
    (another dataset, images folder or field weights than the collection was built with),
    CollectionInUse (another process has the collection), OutOfSpace (the disk has no room for the next
    step; what was written is kept), StoreUnreachable. Ctrl-C saves the state and re-raises
    KeyboardInterrupt. Decode workers are spawned processes that import the main module: a script calling
    `ingest_dataset` with workers > 0 needs the usual `if __name__ == "__main__":` guard.
    """
    if config.embeddings is not None:
        return _ingest_embeddings(config, progress)
    started = time.perf_counter()
    workers = available_cpus() if config.workers is None else config.workers
    with open_store(config.store, api_key=config.api_key) as store, _state_lock(config):
        store.hold(config.collection, create=True)  # before anything of it is read: "in use" at once
        existing = _stored_record(store, config.collection)
        count = store.count(existing.name) if existing is not None else 0  # an empty one may change images
        dataset, corpora = _open_dataset(config, existing if count else None)
        record, encoder, created, seconds = _collection(config, store, dataset, corpora, existing, count)
        weights = _field_weights(config, record)

        @contextlib.contextmanager
        def products(pending: bool) -> Iterator[ProductSource]:
            with decode_pool(encoder, workers if pending else 0) as pool:
                yield ProductSource(dataset, encoder, weights, batch_size=config.batch_size, workers=workers,
                                    pool=pool)

        fill = _fill(config, store, record, corpora, dataset_fingerprint(dataset.root), products, progress)
    if fill.total == 0 and fill.rejects.counts:
        raise _nothing_stored(dataset, fill.rejects)
    return _report(config, fill, record, encoder.model_ref, created, started, seconds, workers, corpora,
                   images_root(dataset))


def _ingest_embeddings(config: IngestConfig, progress: Progress) -> IngestReport:
    """`ingest --embeddings DIR`: the collection held first, every part file verified, the collection
    checked or created from the manifest's header, then the shards' rows upserted without a model."""
    assert config.embeddings is not None
    started = time.perf_counter()
    with open_store(config.store, api_key=config.api_key) as store, _state_lock(config):
        store.hold(config.collection, create=True)  # as the one-shot ingest: refused at once when in use
        manifest = read_manifest(config.embeddings.resolve())
        corpora = tuple(c for c in config.corpora if c in manifest.corpora())
        if not corpora:
            raise DataError(f"{config.embeddings} holds no rows of the corpora {config.corpora}",
                            "embed the dataset with `gcl-vdb embed` first")
        clock = time.perf_counter()
        verify_manifest(manifest, progress=progress)
        seconds = {"verify": time.perf_counter() - clock}
        record, created = _collection_for_shards(config, store, manifest, corpora)

        @contextlib.contextmanager
        def shards(pending: bool) -> Iterator[ShardSource]:
            yield ShardSource(manifest, config.batch_size)

        fill = _fill(config, store, record, corpora, manifest.fingerprint(), shards, progress)
    images_dir = manifest.header.dataset.get("images_dir")
    return _report(config, fill, record, manifest.header.model.model_ref, created, started, seconds, 0, corpora,
                   Path(images_dir) if images_dir else None)


@dataclass
class _Filled:
    """What `_fill` leaves for the report: `stored` points per corpus in the collection, `total` in all."""

    tally: Tally
    state: IngestState
    rejects: RejectsFile
    resumed_from: dict[int, int]
    seconds: dict[str, float]
    stored: dict[int, int]
    total: int
    location: str


def _fill(
    config: IngestConfig, store: VectorStore, record: CollectionRecord, corpora: tuple[int, ...],
    fingerprint: list[list[Any]], open_source: Callable[[bool], contextlib.AbstractContextManager[Source]],
    progress: Progress,
) -> _Filled:
    """Resume state, rejects file, the pipeline from `open_source(pending)` into the store, then the index."""
    state = IngestState.load(config.resolved_state_dir() / STATE_FILE, record.name, record.created_at, fingerprint)
    resumed_from = {c: state.cursor(c).done for c in corpora} if state.resumed else {}
    rejects = RejectsFile(config.resolved_rejects(), resume=state.resumed)
    pending = any(rejects.retrying(c) for c in corpora) or not all(state.cursor(c).complete for c in corpora)
    seconds: dict[str, float] = {}
    try:
        clock = time.perf_counter()
        with open_source(pending) as source:
            tally = run_pipeline(PipelineSetup(source, StoreSink(store, record.name), state, rejects, corpora,
                                               config.resolved_checkpoint_s(), f"ingesting into {record.name}"), progress)
        seconds["pipeline"] = time.perf_counter() - clock
    finally:
        rejects.close()
    if config.build_index:
        clock = time.perf_counter()
        store.optimize(record.name, progress=progress)
        seconds["index"] = time.perf_counter() - clock
    stored = {c: store.count(record.name, corpus=c) for c in corpora}
    return _Filled(tally, state, rejects, resumed_from, seconds, stored, store.count(record.name), store.location)


def _report(
    config: IngestConfig, fill: _Filled, record: CollectionRecord, model_ref: str, created: bool, started: float,
    seconds: dict[str, float], workers: int, corpora: tuple[int, ...], images_dir: Path | None,
) -> IngestReport:
    counts = tuple(_corpus_counts(c, fill.tally, fill.stored[c], fill.state) for c in corpora)
    written = sum(c.written for c in counts)
    seconds = seconds | fill.seconds | fill.tally.seconds | {"total": time.perf_counter() - started}
    return IngestReport(
        collection=record.name, store=fill.location, model_ref=model_ref, dim=record.dim, created=created,
        points_written=written, points_present=sum(c.present for c in counts), points_total=fill.total,
        corpora=counts, rejects=dict(sorted(fill.rejects.counts.items())),
        new_rejects=sum(c.rejected for c in counts), rejects_file=fill.rejects.path, state_file=fill.state.path,
        resumed_from=fill.resumed_from, seconds={k: round(v, 4) for k, v in seconds.items()},
        points_per_s=written / seconds["pipeline"] if seconds["pipeline"] else 0.0,
        index_built=config.build_index, workers=workers,
        missing_corpora=tuple(c for c in config.corpora if c not in corpora), embeddings=config.embeddings,
        images_dir=images_dir, retried=sum(c.retried for c in counts), recovered=sum(c.recovered for c in counts),
    )


def _state_lock(config: IngestConfig) -> contextlib.AbstractContextManager[object]:
    """A server collection's ingest state (cursor, rejects) is a local folder that two ingests must not
    share; an embedded collection's lock covers its state already."""
    if not config.server:
        return contextlib.nullcontext()
    state_dir = config.resolved_state_dir()
    return Lock(state_dir / "ingest.lock", f"the ingest state of collection {config.collection} ({state_dir})")


def _open_dataset(config: IngestConfig, existing: CollectionRecord | None) -> tuple[Dataset, tuple[int, ...]]:
    """The dataset and the corpora to ingest. Images: `config.images_dir`, else the folder the collection
    recorded (`existing`: a collection that holds products), else the dataset's default
    (`default_images_dir`)."""
    assert config.data is not None  # IngestConfig checked it
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
        _check_same_source(existing, dataset.root, weights, config.storage)
        if not _same_images(existing, images_root(dataset), count):
            config = _recreate(store, existing, config, images_root(dataset))
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
    return _same_model(store, existing, encoder.identity), encoder, False, seconds


def _same_model(store: VectorStore, existing: CollectionRecord, identity: ModelIdentity) -> CollectionRecord:
    """`existing`, refused unless built by the model of `identity` (`require_model`); a collection created
    before identities were recorded, by this model_ref, gets it recorded."""
    require_model(existing, identity)
    if existing.identity is None:
        log.warning("recording the identity of %s in collection %s", identity.short(), existing.name)
        existing = dataclasses.replace(existing, identity=identity)
        store.update_record(existing)
    return existing


def _same_images(record: CollectionRecord, wanted: Path, count: int) -> bool:
    """Whether the collection's payload image paths are relative to the images folder `wanted`. An empty
    collection (e.g. every product was a `missing-image` reject) may change folders: False; a collection
    with products refuses another folder (ConfigError)."""
    recorded = record.ingest.get("images_dir")
    if not recorded or Path(str(recorded)) == wanted:
        return True
    if count == 0:
        return False
    raise ConfigError(
        f"collection {record.name!r} holds {count:,} products whose images are in {recorded}, not {wanted}",
        f"pass --images-dir {recorded} (or leave it out), or drop the collection first "
        f"(`gcl-vdb collections drop {record.name}`)")


def _recreate(store: VectorStore, existing: CollectionRecord, config: IngestConfig, images_dir: Path) -> IngestConfig:
    """Drop the empty collection `existing` to create it again for `images_dir`, with the same storage."""
    log.warning("collection %s holds no product yet: re-created for the images in %s", existing.name, images_dir)
    store.drop(existing.name)
    return dataclasses.replace(config, storage=existing.storage)


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
    record: CollectionRecord, root: Path, weights: FieldWeights, storage: StorageOptions | None
) -> None:
    """A collection holds one dataset with one set of field weights, stored one way: refuse to mix in
    another, or to change the storage (fixed at creation)."""
    drop = f"ingest into another collection, or drop this one first (`gcl-vdb collections drop {record.name}`)"
    if record.dataset_root is not None and Path(record.dataset_root) != root:
        raise ConfigError(f"collection {record.name!r} was built from {record.dataset_root}, not {root}", drop)
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


def _collection_for_shards(
    config: IngestConfig, store: VectorStore, manifest: Manifest, corpora: tuple[int, ...]
) -> tuple[CollectionRecord, bool]:
    """The collection the shards go into — checked against their header (the same checks as the one-shot
    ingest, the model's identity included), or created from it — and whether it is new. Every check runs
    before anything is written."""
    header = manifest.header
    if config.field_weights is not None and config.field_weights != header.field_weights:
        raise ConfigError(f"the shards' fused vectors were built with field weights {header.field_weights}, "
                          f"not {config.field_weights}", "leave --fields out, or embed again with those weights")
    root, images_dir = Path(header.dataset["root"]), header.dataset.get("images_dir")
    existing = _stored_record(store, config.collection)
    if existing is not None:
        _check_same_source(existing, root, header.field_weights, config.storage)
        if images_dir is None or _same_images(existing, Path(images_dir), store.count(existing.name)):
            return _same_model(store, existing, header.model), False
        config = _recreate(store, existing, config, Path(images_dir))
    extra_columns = header.dataset.get("extra_columns")  # absent from shards embedded before it was recorded
    record = CollectionRecord(
        config.collection, model_ref=header.model.model_ref, dim=header.dim, field_weights=header.field_weights,
        dataset_root=str(root), storage=config.storage or StorageOptions(),
        ingest={"layout": header.dataset.get("layout"), "images_dir": images_dir, "batch_size": config.batch_size,
                "corpora": list(config.corpora), "image_size": header.model.preprocessing.image_size,
                "embeddings": str(manifest.root),
                **({} if extra_columns is None else {"extra_columns": [c for c in extra_columns.split(",") if c]})},
        identity=header.model, progress=IngestProgress(False, {c: (0, None) for c in corpora}),
    )
    return store.create_collection(record, shards=config.shards, replicas=config.replicas,
                                   bulk_load=config.server), True
