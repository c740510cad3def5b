"""What an ingest is asked to do (`IngestConfig`) and what it did (`IngestReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gcl_vectordb.data.records import CORPORA
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.settings import DEFAULTS, WORK_DIR
from gcl_vectordb.store import is_server_location
from gcl_vectordb.store.records import validate_collection_name
from gcl_vectordb.store.storage import StorageOptions

STATE_FILE = "state.json"
REJECTS_FILE = "rejects.jsonl"


@dataclass(frozen=True)
class IngestConfig:
    """One ingest: which dataset goes into which collection, with which model, and how.

    `store`: a folder (embedded engine), an http(s) URL, `:memory:` or `local:PATH`. `batch_size`:
    products per pipeline batch (the unit of upserts and of the resume cursor). `workers`: image
    decoding processes (None: one per CPU; 0: decode in a thread of this process). `field_weights`:
    α of the fused vector (None: the existing collection's, else `DEFAULT_FIELD_WEIGHTS`).
    `state_dir`: where the resume state and the rejects file live (None: see `default_state_dir`);
    `rejects`: the rejects file (None: `state_dir/rejects.jsonl`).
    `checkpoint_s`: seconds between durable checkpoints (store flush, then the cursor); 0 = every batch;
    None: 5 s when embedding, 30 s when loading shards (a flush costs as much as ≈ 0.5 s of loading, and
    the points after the cursor are in the engine's write-ahead log anyway: a resumed load skips them).
    `shards` / `replicas`: server collections only. `storage`: how a new collection stores its vectors
    (`gcl_vectordb.store.storage`; None: the existing collection's, else the `ram` preset); an existing
    collection stored otherwise is refused. `embeddings`: load the shards of `gcl-vdb embed` from this
    folder instead of embedding `data` with `model_ref` (leave both None then).
    """

    collection: str
    data: Path | None = None
    model_ref: str | None = None
    store: str = DEFAULTS["store"]
    api_key: str | None = field(default=None, repr=False)
    batch_size: int = 128
    workers: int | None = None
    field_weights: FieldWeights | None = None
    build_index: bool = True
    rejects: Path | None = None
    state_dir: Path | None = None
    shards: int = 1
    replicas: int = 1
    corpora: tuple[int, ...] = CORPORA
    images_dir: Path | None = None
    checkpoint_s: float | None = None
    device: str = "auto"
    encoder_batch_size: int = 64
    storage: StorageOptions | None = None
    embeddings: Path | None = None

    def __post_init__(self) -> None:
        validate_collection_name(self.collection)
        if self.field_weights is not None and not isinstance(self.field_weights, FieldWeights):
            raise TypeError(f"field_weights must be FieldWeights, got {type(self.field_weights).__name__}")
        if self.storage is not None and not isinstance(self.storage, StorageOptions):
            raise TypeError(f"storage must be StorageOptions, got {type(self.storage).__name__}")
        object.__setattr__(self, "corpora", tuple(self.corpora))
        if self.embeddings is not None:
            object.__setattr__(self, "embeddings", Path(self.embeddings))
            if self.data is not None or self.model_ref:
                raise ConfigError("embedding shards carry their model and dataset",
                                  "leave --model and --data out with --embeddings")
        elif self.data is None:
            raise ConfigError("no dataset given", "pass --data DIR (or --embeddings DIR of `gcl-vdb embed`)")
        elif not self.model_ref:
            raise ConfigError("no model given", "pass --model MODEL_DIR (an ONNX bundle or a checkpoint)")
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
        if not self.store:
            raise ConfigError("the store location is empty", "pass --qdrant PATH|URL or set GCL_VDB_STORE")
        checks = (
            (self.batch_size >= 1, f"batch size must be ≥ 1 (got {self.batch_size})"),
            (self.encoder_batch_size >= 1, f"encoder batch size must be ≥ 1 (got {self.encoder_batch_size})"),
            (self.workers is None or self.workers >= 0, f"workers must be ≥ 0 (got {self.workers})"),
            (self.checkpoint_s is None or self.checkpoint_s >= 0,
             f"checkpoint interval must be ≥ 0 s (got {self.checkpoint_s})"),
            (bool(self.corpora) and set(self.corpora) <= set(CORPORA),
             f"corpora must be a non-empty subset of {CORPORA} (got {self.corpora})"),
            (self.shards >= 1 and self.replicas >= 1,
             f"shards and replicas must be ≥ 1 (got {self.shards}, {self.replicas})"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if (self.shards, self.replicas) != (1, 1) and not is_server_location(self.store):
            raise ConfigError("shards and replicas need a Qdrant server; the embedded store holds one shard",
                              "pass --qdrant http://HOST:6333, or leave --shards/--replicas out")

    @property
    def server(self) -> bool:
        return is_server_location(self.store)

    def resolved_checkpoint_s(self) -> float:
        if self.checkpoint_s is not None:
            return self.checkpoint_s
        return 30.0 if self.embeddings is not None else 5.0

    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir(self.store, self.collection)

    def resolved_rejects(self) -> Path:
        return self.rejects if self.rejects is not None else self.resolved_state_dir() / REJECTS_FILE


def default_state_dir(store: str, collection: str) -> Path:
    """Embedded store: `<store>/<collection>/ingest/` (next to the collection, dropped with it).
    Server (or local mode): `gcl-vdb-work/ingest/<collection>/` under the working directory."""
    if is_server_location(store):
        return WORK_DIR / "ingest" / collection
    return Path(store) / collection / "ingest"


@dataclass(frozen=True)
class CorpusCounts:
    """One corpus in one run: points written, already stored before it (stored − written), rejected (new
    rejects of this run); the cursor after it; earlier rejects retried and recovered."""

    corpus: int
    written: int
    present: int
    rejected: int
    done: int  # entries of the corpus fully handled so far (all runs; `Dataset.product_batches`)
    complete: bool
    retried: int = 0  # products rejected by an earlier run and read again in this one
    recovered: int = 0  # of those, stored now


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did. `rejects` counts by reason every reject of this ingest (all runs, the
    rejects file); `new_rejects` those this run found. `points_written + points_present` = the points
    of the ingested corpora in the collection. `resumed_from`: the cursor per corpus at the start ({} for
    a fresh ingest). `retried` / `recovered`: products rejected by an earlier run for a curable reason
    (`RETRYABLE_REASONS`) that this run read again / stored. `seconds`: wall time per step (model,
    pipeline, index, total) and time spent per stage inside the pipeline (read, decode = worker CPU,
    wait = encoder idle waiting for decoded pixels, encode, upsert, checkpoint; from shards: verify,
    read, convert, prepare, upsert, checkpoint). `points_per_s`: points written / pipeline seconds.
    """

    collection: str
    store: str
    model_ref: str
    dim: int
    created: bool
    points_written: int
    points_present: int
    points_total: int
    corpora: tuple[CorpusCounts, ...]
    rejects: dict[str, int]
    new_rejects: int
    rejects_file: Path
    state_file: Path
    resumed_from: dict[int, int]
    seconds: dict[str, float]
    points_per_s: float
    index_built: bool
    workers: int
    missing_corpora: tuple[int, ...] = ()
    embeddings: Path | None = None  # the shards loaded (`ingest --embeddings`); None: the dataset, embedded
    images_dir: Path | None = None  # the images folder read (symlinks resolved)
    retried: int = 0
    recovered: int = 0
