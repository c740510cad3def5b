"""`gcl-vdb export`: a trained checkpoint (or any model reference) → a verified ONNX bundle folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import render


def export_command(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write (replaced if it holds a bundle).")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Checkpoint or training-run folder; or a weights file together with --model ARCH."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model reference: gcl-tiny, ViT-B-32, ViT-B-32:/w.safetensors, ARCH:TAG, hf-hub:org/repo."),
    ] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write an fp16 variant (for GPUs).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write a dynamically quantised int8 variant (for CPUs).")] = False,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version.")] = 17,
    json_output: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Export the text and image towers to ONNX, check them against torch, write manifest.json.

    Examples:

      gcl-vdb export --checkpoint gcl-vdb-work/runs/demo --out gcl-vdb-work/model --int8

      gcl-vdb export --model gcl-tiny --out /tmp/m
    """
    if checkpoint is None and model is None:
        raise typer.BadParameter("give --checkpoint PATH or --model REF")
    from exporters import ExportConfig, export_bundle  # heavy (torch, onnx): imported only when exporting

    variants = ("fp32",) + (("int8",) if int8 else ()) + (("fp16",) if fp16 else ())
    config = ExportConfig(out=out, model_ref=model, checkpoint=checkpoint, variants=variants, opset=opset)
    with render.rich_progress() as progress:
        manifest = export_bundle(config, progress=progress)
    if json_output:
        render.print_json({"out": out.resolve(), "manifest": manifest})
    else:
        render.export_summary(manifest, out.resolve())
