"""`ingest_dataset(config)`: a Marqo-GS dataset's two corpora into one collection — resumable, idempotent.

    report = ingest_dataset(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                         model_ref="gcl-vdb-work/model"))
    report = ingest_dataset(IngestConfig(collection="gs10m", embeddings=Path("gcl-vdb-work/embeddings")))

Two sources, one path: the dataset embedded on the fly (`ProductSource`), or embedding shards written by
`gcl-vdb embed` (`ShardSource`, every file verified before anything is written). Steps: check an existing
collection against this ingest (same dataset, same field weights, the same model: its identity where the
record has one, else its dim) or create it (server: indexing deferred for the bulk load); load the resume
state; run the pipeline (`gcl_vectordb.ingest.pipeline`) into the store; build the index (`optimize`).
Durability: the embedded engine writes each upsert to its write-ahead log before returning, so points
survive a SIGKILL even before `flush()`; the cursor still moves only after a flush (see `state`).
"""

from __future__ import annotations

import contextlib
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
from gcl_vectordb.ingest.products import ProductSource, decode_pool
from gcl_vectordb.ingest.shard_format import Manifest, read_manifest, verify_manifest
from gcl_vectordb.ingest.shard_parts import ShardSource
from gcl_vectordb.ingest.state import IngestState, RejectsFile, dataset_fingerprint
from gcl_vectordb.ingest.store_sink import StoreSink
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import CollectionRecord, VectorStore, check_model, open_store
from gcl_vectordb.store.storage import StorageOptions

log = logging.getLogger(__name__)
IDENTITY_KEY = "model_identity"
"""Key of the model's identity (`ModelIdentity.to_dict`) in a collection record's `extra`."""


def ingest_dataset(config: IngestConfig, progress: Progress = NULL_PROGRESS) -> IngestReport:
    """Load the dataset's corpora into `config.collection` (see the module docstring); returns the report.

    With `config.embeddings`, the points come from embedding shards (`gcl-vdb embed`) instead: no model
    runs, every file is verified first, and the collection's model must be the shards' model.

    Raises DataError (no dataset; shards missing, truncated, corrupt or lacking columns), ModelMismatch
    (another model than the collection's), ConfigError (another dataset or other field weights than the
    collection was built with), CollectionInUse / StoreUnreachable (store). Ctrl-C saves the state and
    re-raises KeyboardInterrupt. Decode workers are spawned processes that import the main module: a
    script calling `ingest_dataset` with workers > 0 needs the usual `if __name__ == "__main__":` guard.
    """
    if config.embeddings is not None:
        return _ingest_embeddings(config, progress)
    started = time.perf_counter()
    assert config.data is not None and config.model_ref is not None  # IngestConfig checked it
    images_dir = config.images_dir.resolve() if config.images_dir is not None else None
    dataset = open_dataset(config.data.resolve(), images_dir=images_dir)
    corpora = tuple(c for c in config.corpora if c in dataset.corpora)
    if not corpora:
        raise DataError(f"{config.data} holds none of the corpora {config.corpora}", DATA_HINT)
    workers = available_cpus() if config.workers is None else config.workers
    with open_store(config.store, api_key=config.api_key) as store:
        record, encoder, created, seconds = _collection(config, store, dataset)
        weights = _field_weights(config, record)

        @contextlib.contextmanager
        def products(pending: bool) -> Iterator[ProductSource]:
            with decode_pool(encoder, workers if pending else 0) as pool:
                yield ProductSource(dataset, encoder, weights, batch_size=config.batch_size, workers=workers,
                                    pool=pool)

        fill = _fill(config, store, record, corpora, dataset_fingerprint(dataset.root), products, progress)
    return _report(config, fill, record, encoder.model_ref, created, started, seconds, workers,
                   tuple(c for c in config.corpora if c not in corpora))


def _ingest_embeddings(config: IngestConfig, progress: Progress) -> IngestReport:
    """`ingest --embeddings DIR`: every part file verified, the collection checked or created from the
    manifest's header, then the shards' rows upserted without a model."""
    assert config.embeddings is not None
    started = time.perf_counter()
    manifest = read_manifest(config.embeddings.resolve())
    corpora = tuple(c for c in config.corpora if c in manifest.corpora())
    if not corpora:
        raise DataError(f"{config.embeddings} holds no rows of the corpora {config.corpora}",
                        "embed the dataset with `gcl-vdb embed` first")
    clock = time.perf_counter()
    verify_manifest(manifest, progress=progress)
    seconds = {"verify": time.perf_counter() - clock}
    with open_store(config.store, api_key=config.api_key) as store:
        record, created = _collection_for_shards(config, store, manifest)

        @contextlib.contextmanager
        def shards(pending: bool) -> Iterator[ShardSource]:
            yield ShardSource(manifest, config.batch_size)

        fill = _fill(config, store, record, corpora, manifest.fingerprint(), shards, progress)
    return _report(config, fill, record, manifest.header.model.model_ref, created, started, seconds, 0,
                   tuple(c for c in config.corpora if c not in corpora))


@dataclass
class _Filled:
    """What `_fill` leaves for the report."""

    tally: Tally
    state: IngestState
    rejects: RejectsFile
    resumed_from: dict[int, int]
    seconds: dict[str, float]
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
    done_before = {c: state.cursor(c).done for c in corpora if state.cursor(c).complete}
    rejects = RejectsFile(config.resolved_rejects(), resume=state.resumed)
    seconds: dict[str, float] = {}
    try:
        clock = time.perf_counter()
        with open_source(not all(state.cursor(c).complete for c in corpora)) as source:
            tally = run_pipeline(PipelineSetup(source, StoreSink(store, record.name), state, rejects, corpora,
                                               config.resolved_checkpoint_s(), f"ingesting into {record.name}"), progress)
        seconds["pipeline"] = time.perf_counter() - clock
    finally:
        rejects.close()
    if config.build_index:
        clock = time.perf_counter()
        store.optimize(record.name, progress=progress)
        seconds["index"] = time.perf_counter() - clock
    for corpus, done in done_before.items():  # completed by an earlier run: skipped whole, all present
        tally.add(tally.present, corpus, done)
    return _Filled(tally, state, rejects, resumed_from, seconds, store.count(record.name), store.location)


def _report(
    config: IngestConfig, fill: _Filled, record: CollectionRecord, model_ref: str, created: bool, started: float,
    seconds: dict[str, float], workers: int, missing: tuple[int, ...],
) -> IngestReport:
    tally, state = fill.tally, fill.state
    counts = tuple(CorpusCounts(c, tally.written.get(c, 0), tally.present.get(c, 0), tally.rejected.get(c, 0),
                                state.cursor(c).done, state.cursor(c).complete)
                   for c in config.corpora if c not in missing)
    written = sum(c.written for c in counts)
    seconds = seconds | fill.seconds | tally.seconds | {"total": time.perf_counter() - started}
    return IngestReport(
        collection=record.name, store=fill.location, model_ref=model_ref, dim=record.dim, created=created,
        points_written=written, points_present=sum(c.present for c in counts), points_total=fill.total,
        corpora=counts, rejects=dict(sorted(fill.rejects.counts.items())),
        new_rejects=sum(c.rejected for c in counts), rejects_file=fill.rejects.path, state_file=state.path,
        resumed_from=fill.resumed_from, seconds={k: round(v, 4) for k, v in seconds.items()},
        points_per_s=written / seconds["pipeline"] if seconds["pipeline"] else 0.0,
        index_built=config.build_index, workers=workers, missing_corpora=missing, embeddings=config.embeddings,
    )


def _collection(
    config: IngestConfig, store: VectorStore, dataset: Dataset
) -> tuple[CollectionRecord, Encoder, bool, dict[str, float]]:
    """The collection to fill — checked against this ingest, or created — the encoder, whether the
    collection is new, and the seconds the model took to load."""
    existing = _stored_record(store, config.collection)
    weights = _field_weights(config, existing)
    if existing is not None:
        _check_same_source(existing, dataset.root, weights, config.storage)
        store.count(config.collection)  # takes the collection now: "in use" before the slow work
    clock = time.perf_counter()
    encoder = load_encoder(config.model_ref, device=config.device, batch_size=config.encoder_batch_size)
    seconds = {"model": time.perf_counter() - clock}
    record = existing or _new_record(config, dataset, encoder, weights)
    check_identity(record, encoder.identity)
    if existing is None:
        record = store.create_collection(record, shards=config.shards, replicas=config.replicas,
                                         bulk_load=config.server)
    return record, encoder, existing is None, seconds


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


def _new_record(config: IngestConfig, dataset: Dataset, encoder: Encoder, weights: FieldWeights) -> CollectionRecord:
    return CollectionRecord(
        config.collection, model_ref=encoder.model_ref, dim=encoder.dim, field_weights=weights,
        dataset_root=str(dataset.root), storage=config.storage or StorageOptions(),
        ingest={"layout": dataset.layout, "images_dir": str(dataset.images_dir), "batch_size": config.batch_size,
                "corpora": list(config.corpora), "image_size": encoder.image_size},
        extra={IDENTITY_KEY: encoder.identity.to_dict()},
    )


def _collection_for_shards(config: IngestConfig, store: VectorStore, manifest: Manifest) -> tuple[CollectionRecord, bool]:
    """The collection the shards go into — checked against their header, or created from it — and whether
    it is new. Every check runs before anything is written."""
    header = manifest.header
    if config.field_weights is not None and config.field_weights != header.field_weights:
        raise ConfigError(f"the shards' fused vectors were built with field weights {header.field_weights}, "
                          f"not {config.field_weights}", "leave --fields out, or embed again with those weights")
    root = Path(header.dataset["root"])
    existing = _stored_record(store, config.collection)
    if existing is not None:
        _check_same_source(existing, root, header.field_weights, config.storage)
        check_identity(existing, header.model)
        store.count(config.collection)  # takes the collection now: "in use" before the slow work
        return existing, False
    record = CollectionRecord(
        config.collection, model_ref=header.model.model_ref, dim=header.dim, field_weights=header.field_weights,
        dataset_root=str(root), storage=config.storage or StorageOptions(),
        ingest={"layout": header.dataset.get("layout"), "images_dir": header.dataset.get("images_dir"),
                "batch_size": config.batch_size, "corpora": list(config.corpora),
                "image_size": header.model.preprocessing.image_size, "embeddings": str(manifest.root)},
        extra={IDENTITY_KEY: header.model.to_dict()},
    )
    return store.create_collection(record, shards=config.shards, replicas=config.replicas,
                                   bulk_load=config.server), True


def check_identity(record: CollectionRecord, identity: ModelIdentity) -> None:
    """Refuse vectors of another model than the one that built `record`: the same weights, dim and
    preprocessing where the record names its model's identity, else (older records) the same dim."""
    stored = record.extra.get(IDENTITY_KEY)
    if stored is None:
        check_model(record, identity.model_ref, identity.dim)
        return
    ModelIdentity.from_dict(stored).require_same(identity, record.name)
