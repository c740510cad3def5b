"""`gcl-vdb embed`: embed a dataset's two corpora into parquet shards (one shard per process, resumable)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import (
    DataOption,
    ImagesDirOption,
    JsonOption,
    ModelOption,
    WorkersOption,
    parse_weights,
)
from gcl_vectordb.data.records import WHOLE, Partition
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.ingest.embed import EmbedConfig, EmbedReport, embed_dataset
from gcl_vectordb.settings import WORK_DIR, resolve_settings, torchrun_env

app = command_app()


class VectorDtype(StrEnum):
    float32 = "float32"
    float16 = "float16"


@app.command("embed")
def embed_command(
    data: DataOption = None,
    model: ModelOption = None,
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Embeddings folder; every shard of one job writes here.")
    ] = WORK_DIR / "embeddings",
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="I/N", show_default=False,
                                 help="Embed part I of N (0 ≤ I < N) of the products; under torchrun the default "
                                      "is RANK/WORLD_SIZE, else 0/1 (everything).")
    ] = None,
    fields: Annotated[
        str | None, typer.Option("--fields", metavar="image=A,title=B",
                                 help="GCL field weights of the fused vector (default image=0.9,title=0.1).")
    ] = None,
    dtype: Annotated[
        VectorDtype, typer.Option("--dtype", help="How vectors are stored in the shards (float16: half the size).")
    ] = VectorDtype.float32,
    device: Annotated[
        str, typer.Option("--device", help="auto (a GPU where present: ONNX Runtime CUDA/TensorRT or torch bf16; "
                                           "under torchrun the rank's LOCAL_RANK GPU), cpu, cuda[:N] or tensorrt.")
    ] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Products per pipeline batch.")] = 128,
    encoder_batch_size: Annotated[
        int, typer.Option("--encoder-batch-size", min=1, help="Images or texts per model call.")
    ] = 64,
    workers: WorkersOption = None,
    part_rows: Annotated[
        int, typer.Option("--part-rows", min=1, help="Rows per part file (a part is also written at each "
                                                     "checkpoint, every minute).")
    ] = 16384,
    images_dir: ImagesDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Embed every product of a dataset (both corpora) into parquet shards, without a vector store.

    N processes or machines each embed one shard (--shard I/N, or one torchrun rank each) into the same
    --out folder; re-running a shard after a crash or Ctrl-C continues where it stopped. When the last
    shard finishes, manifest.json is written and [bold]gcl-vdb ingest --embeddings DIR[/bold] loads the
    lot into a collection without running a model.

    Example: [bold]torchrun --nproc-per-node 8 -m gcl_vectordb embed --data DIR --model MODEL --out EMB[/bold]
    """
    settings = resolve_settings(data=data, model=model)
    partition, device = _partition_and_device(shard, device)
    config = EmbedConfig(
        data=settings.data, model_ref=settings.model, out=out, partition=partition,
        field_weights=parse_weights(fields, "--fields") if fields is not None else DEFAULT_FIELD_WEIGHTS,
        dtype=dtype.value, batch_size=batch_size, workers=workers, device=device,
        encoder_batch_size=encoder_batch_size, part_rows=part_rows, images_dir=images_dir,
    )
    with output.ProgressBars() as progress:
        report = embed_dataset(config, progress)
    if json_output:
        output.print_json(report)
    else:
        print_summary(report)


def _partition_and_device(shard: str | None, device: str) -> tuple[Partition, str]:
    """--shard, else torchrun's RANK/WORLD_SIZE, else everything; under torchrun `auto` picks the rank's GPU."""
    launched = torchrun_env()
    if shard is not None:
        try:
            partition = Partition.parse(shard)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--shard") from None
    elif launched is not None:
        partition = Partition(launched.rank, launched.world_size)
    else:
        partition = WHOLE
    if launched is not None and device == "auto":
        device = f"auto:{launched.local_rank}"
    return partition, device


def print_summary(report: EmbedReport) -> None:
    """Rows per corpus, rejects, files, and what to run next."""
    rows = [(c.corpus, c.written, c.rejected, c.done, "yes" if c.complete else "no") for c in report.corpora]
    resumed = ", ".join(f"corpus {c} at {n:,}" for c, n in report.resumed_from.items())
    output.print_table(
        f"shard {report.shard} of {report.out} (model {report.model_ref}, dim {report.dim}, {report.dtype}, "
        f"{report.provider})" + (f" — resumed: {resumed}" if resumed else ""),
        ["corpus", "rows written", "rejected", "products done", "complete"], rows,
        right_align=["rows written", "rejected", "products done"],
    )
    seconds = report.seconds
    stages = ", ".join(f"{k} {seconds[k]:.1f}" for k in ("read", "decode", "wait", "encode", "write", "checkpoint")
                       if k in seconds)
    rejected = ", ".join(f"{reason} {n:,}" for reason, n in report.rejects.items()) or "none"
    output.print_table(None, ["", "value"], [
        ("throughput", f"{report.rows_per_s:,.1f} rows/s ({report.workers} decode workers)"),
        ("seconds", f"total {seconds.get('total', 0.0):.1f}; stages: {stages or '—'}"),
        ("rejected (all runs)", rejected),
        ("rejects file", str(report.rejects_file)),
        ("part files", f"{report.files}" if report.complete else "— (shard not complete)"),
    ])
    if report.manifest is not None:
        output.info(f"every shard is complete: {report.manifest}")
        output.info(f"next:   gcl-vdb ingest --embeddings {report.out}")
    elif report.complete:
        missing = ", ".join(f"{i}/{report.shard.split('/')[1]}" for i in report.missing_shards[:8])
        output.info(f"shard {report.shard} is complete; still to embed: {missing}"
                    f"{' …' if len(report.missing_shards) > 8 else ''}")
