"""`gcl-vdb export`: a trained checkpoint (or any model reference) → a verified ONNX bundle folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import JsonOption
from gcl_vectordb.encoders import ExportManifest

app = command_app()


@app.command("export")
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
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version (below 18 the text tower runs every "
                                       "query at the full context length, several times slower).")] = 18,
    json_output: JsonOption = False,
) -> None:
    """Export the text and image towers to ONNX, check them against torch, write manifest.json.

    Examples:

      gcl-vdb export --checkpoint gcl-vdb-work/runs/demo --out gcl-vdb-work/model --int8

      gcl-vdb export --model gcl-tiny --out /tmp/m
    """
    if checkpoint is None and model is None:
        raise typer.BadParameter("give --checkpoint PATH or --model REF")
    from exporters import ExportConfig, export_bundle  # cold start: torch and onnx, only when exporting

    variants = ("fp32",) + (("int8",) if int8 else ()) + (("fp16",) if fp16 else ())
    config = ExportConfig(out=out, model_ref=model, checkpoint=checkpoint, variants=variants, opset=opset)
    with output.ProgressBars() as progress:
        manifest = export_bundle(config, progress=progress)
    if json_output:
        output.print_json({"out": out.resolve(), "manifest": manifest})
    else:
        print_bundle(manifest, out.resolve())


def print_bundle(manifest: ExportManifest, out: Path) -> None:
    """What the bundle holds and how closely each variant reproduces torch."""
    rows = []
    for variant, files in manifest.variants.items():
        for tower in ("text", "image"):
            name = getattr(files, tower)
            parity = manifest.parity.get(variant, {}).get(tower)
            size_mb = f"{(out / name).stat().st_size / 1e6:.1f}" if (out / name).is_file() else None
            rows.append([variant, tower, name, size_mb,
                         f"{parity.max_cosine_deviation:.2e}" if parity else None,
                         f"{parity.max_abs_diff:.2e}" if parity else None])
    output.print_table(
        f"ONNX bundle {out} — {manifest.architecture}, dim {manifest.embed_dim}, image {manifest.image_size} px, "
        f"opset {manifest.opset}",
        ["variant", "tower", "file", "MB", "max 1−cos vs torch", "max |Δ|"], rows,
        right_align=["MB", "max 1−cos vs torch", "max |Δ|"],
    )
