"""The two CLIP towers as stand-alone modules, exported to ONNX with a dynamic batch axis.

text:  tokens (batch, context) int64       → text_embeds  (batch, embed_dim) float32, L2-normalised
image: pixels (batch, 3, S, S) float32     → image_embeds (batch, embed_dim) float32, L2-normalised
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from gcl_vectordb.encoders.manifest import IMAGE_INPUT, IMAGE_OUTPUT, TEXT_INPUT, TEXT_OUTPUT
from gcl_vectordb.encoders.models import LoadedClip, quiet_root_warnings
from gcl_vectordb.errors import ExportError

_MAX_SINGLE_FILE = 2 * 1024**3  # protobuf's limit: larger graphs need external data files


class TextTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)


class ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


def example_inputs(loaded: LoadedClip, batch: int = 2) -> dict[str, torch.Tensor]:
    """Trace inputs: token rows shaped like real text (start, a few ids, end, padding) and random pixels."""
    tokens = torch.zeros(batch, loaded.context_length, dtype=torch.long)
    tokens[:, 0], tokens[:, 1:4], tokens[:, 4] = 49406, 1000, 49407
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, loaded.image_size, loaded.image_size, generator=generator)
    return {"text": tokens, "image": pixels}


def export_tower(loaded: LoadedClip, tower: str, path: Path, *, opset: int, dynamo: bool = False) -> int:
    """Write one tower to `path` (single file); returns the opset the file really declares."""
    module = (TextTower if tower == "text" else ImageTower)(loaded.model).eval()
    in_name, out_name = (TEXT_INPUT, TEXT_OUTPUT) if tower == "text" else (IMAGE_INPUT, IMAGE_OUTPUT)
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
                module, (example_inputs(loaded)[tower],), str(path), input_names=[in_name], output_names=[out_name],
                dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}}, opset_version=opset,
                dynamo=dynamo, external_data=False,
            )
    except Exception as exc:  # exporter failures come as many exception types
        raise ExportError(f"exporting the {tower} tower to ONNX failed: {type(exc).__name__}: {str(exc)[:300]}",
                          "try another --opset") from exc
    proto = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
