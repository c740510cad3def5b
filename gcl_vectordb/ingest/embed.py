"""`embed_dataset(config)`: a dataset's products embedded into parquet shards, one shard per process.

    report = embed_dataset(EmbedConfig(data=Path("gcl-vdb-work/data"), model_ref="gcl-vdb-work/model",
                                       out=Path("gcl-vdb-work/embeddings"), partition=Partition(2, 8)))

The embedding half of `ingest` (the same reader, decode workers and encoder: `ProductSource`) writing part
files instead of upserting (`PartsSink`); the format is in `gcl_vectordb.ingest.shard_format`. N processes
or machines each embed one `Partition` (`--shard I/N`, or torchrun's RANK/WORLD_SIZE) into the same
folder; the one that completes the last shard writes `manifest.json`, and `gcl-vdb ingest --embeddings DIR`
loads the lot without a model. A killed run resumes from its cursor: part files are written before the
cursor moves, and a part the cursor does not cover is deleted on resume. One process per shard folder:
each shard folder has its own lock (`gcl_vectordb.store.lock`), so N processes embed N shards at once and a
second process on the same shard is refused with the holder named.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from gcl_vectordb.data.dataset import DATA_HINT, Dataset
from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.data.records import CORPORA, WHOLE, Partition
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.encoders import load_encoder
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.files import available_cpus
from gcl_vectordb.ingest.config import CorpusCounts
from gcl_vectordb.ingest.pipeline import PipelineSetup, run_pipeline
from gcl_vectordb.ingest.products import ProductSource, decode_pool, images_root
from gcl_vectordb.ingest.shard_format import (
    DTYPES,
    REJECTS_FILE,
    STATE_FILE,
    ShardHeader,
    ShardRecord,
    assemble_manifest,
    shard_dir_name,
    write_manifest,
)
from gcl_vectordb.ingest.shard_parts import PartsSink, list_parts, remove_uncovered_parts
from gcl_vectordb.ingest.state import IngestState, RejectsFile, dataset_fingerprint
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store.lock import Lock

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class EmbedConfig:
    """One shard of an embedding job. `partition`: which part of the products (`Partition(I, N)`).
    `dtype`: how vectors are stored (float16 halves the files; the store gets float32 either way).
    `part_rows`: rows per part file; `checkpoint_s`: seconds between checkpoints (a part is written then,
    even if smaller). The rest as in `IngestConfig`."""

    data: Path
    model_ref: str
    out: Path
    partition: Partition = WHOLE
    field_weights: FieldWeights = DEFAULT_FIELD_WEIGHTS
    dtype: str = "float32"
    batch_size: int = 128
    workers: int | None = None
    device: str = "auto"
    encoder_batch_size: int = 64
    part_rows: int = 16384
    checkpoint_s: float = 60.0
    corpora: tuple[int, ...] = CORPORA
    images_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "corpora", tuple(sorted(set(self.corpora))))
        if not isinstance(self.field_weights, FieldWeights):
            raise TypeError(f"field_weights must be FieldWeights, got {type(self.field_weights).__name__}")
        if not self.model_ref:
            raise ConfigError("no model given", "pass --model MODEL_DIR (an ONNX bundle or a checkpoint)")
        checks = (
            (self.dtype in DTYPES, f"unknown vector dtype {self.dtype!r} (use {' or '.join(DTYPES)})"),
            (self.batch_size >= 1 and self.encoder_batch_size >= 1 and self.part_rows >= 1,
             "batch sizes and part rows must be ≥ 1"),
            (self.workers is None or self.workers >= 0, f"workers must be ≥ 0 (got {self.workers})"),
            (self.checkpoint_s >= 0, f"checkpoint interval must be ≥ 0 s (got {self.checkpoint_s})"),
            (bool(self.corpora) and set(self.corpora) <= set(CORPORA),
             f"corpora must be a non-empty subset of {CORPORA} (got {self.corpora})"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass(frozen=True)
class EmbedReport:
    """What one `embed` run did for its shard. `complete`: the shard is finished (this run or before);
    `manifest`: written once every shard of the folder is complete (else None, `missing_shards` lists
    those still to run). `seconds`: model, pipeline, hash (sha256 of the parts), total and the stages
    (read, decode, wait, encode, write, checkpoint)."""

    out: Path
    shard: str
    folder: Path
    model_ref: str
    dim: int
    dtype: str
    provider: str
    created: bool
    complete: bool
    corpora: tuple[CorpusCounts, ...]
    rows_written: int
    rejects: dict[str, int]
    new_rejects: int
    rejects_file: Path
    resumed_from: dict[int, int]
    files: int
    manifest: Path | None
    missing_shards: tuple[int, ...]
    seconds: dict[str, float]
    rows_per_s: float
    workers: int


def embed_dataset(config: EmbedConfig, progress: Progress = NULL_PROGRESS) -> EmbedReport:
    """Embed this shard's products of both corpora into part files (see the module docstring).

    Raises DataError (no dataset; the folder holds another embedding job), CollectionInUse (another
    process embeds this shard, named), ModelError (model). Ctrl-C writes what is finished and re-raises KeyboardInterrupt. Decode workers are
    spawned processes: a script calling this with workers > 0 needs an `if __name__ == "__main__":` guard.
    """
    started = time.perf_counter()
    dataset = open_dataset(config.data.resolve(), images_dir=config.images_dir and config.images_dir.resolve())
    corpora = tuple(c for c in config.corpora if c in dataset.corpora)
    if not corpora:
        raise DataError(f"{config.data} holds none of the corpora {config.corpora}", DATA_HINT)
    clock = time.perf_counter()
    encoder = load_encoder(config.model_ref, device=config.device, batch_size=config.encoder_batch_size)
    seconds = {"model": time.perf_counter() - clock}
    header = ShardHeader(encoder.identity, config.field_weights, config.dtype, config.partition.count,
                         _dataset_description(dataset, corpora))
    folder = config.out / shard_dir_name(config.partition)
    folder.mkdir(parents=True, exist_ok=True)
    workers = available_cpus() if config.workers is None else config.workers
    with Lock(folder / LOCK_FILE, f"shard {config.partition} of {config.out}"):
        record, created = _shard_record(folder, header, config.partition)
        state = IngestState.load(folder / STATE_FILE, folder.name, record.created_at,
                                 dataset_fingerprint(dataset.root))
        resumed_from = {c: state.cursor(c).done for c in corpora} if state.resumed else {}
        rejects = RejectsFile(folder / REJECTS_FILE, resume=state.resumed)
        written: dict[int, int] = {}
        new_rejects: dict[int, int] = {}
        try:
            if not record.complete:
                remove_uncovered_parts(folder, state)
                clock = time.perf_counter()
                pending = not all(state.cursor(c).complete for c in corpora)
                with decode_pool(encoder, workers if pending else 0) as pool:
                    source = ProductSource(dataset, encoder, config.field_weights, batch_size=config.batch_size,
                                           workers=workers, pool=pool, partition=config.partition)
                    sink = PartsSink(folder, header, {c: state.cursor(c).done for c in corpora}, config.part_rows)
                    tally = run_pipeline(PipelineSetup(source, sink, state, rejects, corpora, config.checkpoint_s,
                                                       f"embedding shard {config.partition}"), progress)
                seconds["pipeline"] = time.perf_counter() - clock
                seconds |= tally.seconds
                written, new_rejects = tally.written, tally.rejected
                if all(state.cursor(c).complete for c in corpora):
                    clock = time.perf_counter()
                    record = record.completed(list_parts(folder, config.out))
                    record.save(folder)
                    seconds["hash"] = time.perf_counter() - clock
        finally:
            rejects.close()
        manifest, missing = assemble_manifest(config.out)
        manifest_path = write_manifest(manifest) if manifest is not None else None
    counts = tuple(CorpusCounts(c, written.get(c, 0), 0, new_rejects.get(c, 0), state.cursor(c).done,
                                state.cursor(c).complete) for c in corpora)
    total_written = sum(written.values())
    seconds["total"] = time.perf_counter() - started
    return EmbedReport(
        out=config.out, shard=str(config.partition), folder=folder, model_ref=encoder.model_ref, dim=encoder.dim,
        dtype=config.dtype, provider=encoder.describe().provider, created=created, complete=record.complete,
        corpora=counts, rows_written=total_written, rejects=dict(sorted(rejects.counts.items())),
        new_rejects=sum(new_rejects.values()), rejects_file=rejects.path, resumed_from=resumed_from,
        files=len(record.files), manifest=manifest_path, missing_shards=tuple(missing),
        seconds={k: round(v, 4) for k, v in seconds.items()},
        rows_per_s=total_written / seconds["pipeline"] if seconds.get("pipeline") else 0.0, workers=workers,
    )


def _dataset_description(dataset: Dataset, corpora: tuple[int, ...]) -> dict[str, str]:
    """The header's `dataset`: root, layout, images folder (payload image paths are relative to it),
    corpora and the extra payload columns (comma-separated)."""
    return {"root": str(dataset.root), "layout": dataset.layout, "images_dir": str(images_root(dataset)),
            "corpora": ",".join(map(str, corpora)), "extra_columns": ",".join(dataset.extra_columns())}


def _shard_record(folder: Path, header: ShardHeader, partition: Partition) -> tuple[ShardRecord, bool]:
    """The shard's record, checked against this job, or a new one; refuses a folder of another job."""
    _check_folder(folder.parent, header)
    record = ShardRecord.load(folder)
    if record is not None:
        if differences := record.header.differences(header):
            raise DataError(f"{folder} holds embeddings of another job: this run has {'; '.join(differences)}",
                            "use another --out for another model or dataset, or delete the folder")
        return record, False
    record = ShardRecord(header, partition)
    record.save(folder)
    return record, True


def _check_folder(root: Path, header: ShardHeader) -> None:
    """Refuse to add a shard to a folder whose other shards embed another job."""
    for path in sorted(root.glob("shard-*-of-*")):
        record = ShardRecord.load(path) if path.is_dir() else None
        if record is not None and (differences := record.header.differences(header)):
            raise DataError(f"{root} holds embeddings of another job ({path.name} has other settings: this run "
                            f"has {'; '.join(differences)})",
                            "use another --out for another model, dataset or number of shards")
