"""The two CLIP towers as stand-alone modules, exported to ONNX with a dynamic batch axis.

text:  tokens (batch, length) int64        → text_embeds  (batch, embed_dim) float32, L2-normalised
image: pixels (batch, 3, S, S) float32     → image_embeds (batch, embed_dim) float32, L2-normalised

The text tower of open_clip's CLIP (causal attention, pooled at the end-of-text token) also takes
token rows cut after their longest end-of-text token: with a causal mask no position attends to the
padding after it, so the embedding is the same as at the full context length, for a fraction of the
cost (a 5-token query instead of 77 positions). Such a tower is exported with a dynamic length axis and
the manifest says so (`dynamic_text_length`); the export's parity check compares it, on texts of mixed
lengths, with torch at the full context length.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from gcl_vectordb.encoders.manifest import IMAGE_INPUT, IMAGE_OUTPUT, TEXT_INPUT, TEXT_OUTPUT
from gcl_vectordb.encoders.models import LoadedClip, encode_cut_text, quiet_root_warnings, takes_cut_text
from gcl_vectordb.errors import ExportError

_MAX_SINGLE_FILE = 2 * 1024**3  # protobuf's limit: larger graphs need external data files


class TextTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.cut = takes_cut_text(model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cut:
            return encode_cut_text(self.model, tokens)
        return self.model.encode_text(tokens, normalize=True)


class ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


def example_inputs(loaded: LoadedClip, batch: int = 2, length: int | None = None) -> dict[str, torch.Tensor]:
    """Trace inputs: token rows shaped like real text (start, a few ids, end, padding) and random pixels.
    `length` (default: the context length) is the token rows' length."""
    tokens = torch.zeros(batch, length or loaded.context_length, dtype=torch.long)
    tokens[:, 0], tokens[:, 1:4], tokens[:, 4] = 49406, 1000, 49407
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, loaded.image_size, loaded.image_size, generator=generator)
    return {"text": tokens, "image": pixels}


def text_length_is_dynamic(path: Path) -> bool:
    """Whether an exported text tower takes token rows of any length (its length axis is symbolic)."""
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 2 and bool(dims[1].dim_param)


def export_tower(loaded: LoadedClip, tower: str, path: Path, *, opset: int, dynamo: bool = False) -> int:
    """Write one tower to `path` (single file); returns the opset the file really declares."""
    module = (TextTower if tower == "text" else ImageTower)(loaded.model).eval()
    in_name, out_name = (TEXT_INPUT, TEXT_OUTPUT) if tower == "text" else (IMAGE_INPUT, IMAGE_OUTPUT)
    if tower == "text" and opset < 18:
        module.cut = False  # torch.export, which keeps the length symbolic, writes opset 18 at the least
    cut = getattr(module, "cut", False)
    example = example_inputs(loaded, length=8 if cut else None)[tower]
    axes: dict = {"dynamic_axes": {in_name: {0: "batch"}, out_name: {0: "batch"}}}
    if cut:
        # TorchScript tracing bakes the attention's sequence length into its reshapes; torch.export keeps
        # it symbolic (slower to export: seconds instead of < 1 s, measured on gcl-tiny).
        length = torch.export.Dim("length", min=2, max=loaded.context_length)
        axes = {"dynamic_shapes": {"tokens": {0: torch.export.Dim("batch"), 1: length}}}
        dynamo = True
    if dynamo:
        opset = max(opset, 18)  # torch.export writes opset 18; converting down fails for these graphs
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    if size >= _MAX_SINGLE_FILE:
        raise ExportError(f"the {tower} tower has {size / 1e9:.1f} GB of weights; single-file ONNX stops at 2 GB",
                          "export a smaller architecture (external-data bundles are not supported)")
    try:
        # The TorchScript exporter is deprecated upstream but exports these towers in < 1 s and exactly;
        # its deprecation and tracer warnings are expected here and say nothing about this export.
        with warnings.catch_warnings(), quiet_root_warnings("version conversion", "target version"):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), str(path), input_names=[in_name], output_names=[out_name],
                opset_version=opset, dynamo=dynamo, external_data=False, **axes,
                **({"optimize": False, "verbose": False} if dynamo else {}),
            )
    except Exception as exc:  # exporter failures come as many exception types
        raise ExportError(f"exporting the {tower} tower to ONNX failed: {type(exc).__name__}: {str(exc)[:300]}",
                          "try another --opset") from exc
    proto = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
