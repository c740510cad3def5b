"""ONNX export of open_clip towers into self-contained, verified bundles (see `export_bundle`).

Imported only by the `gcl-vdb export` command (lazily) and by tests; `gcl_vectordb` never imports it.
Export needs torch (the `train` extra) and ONNX Runtime for its parity check (the `cpu` or `gpu` extra):
importing the package without them is a clear error.
"""

from gcl_vectordb.extras import require_onnxruntime, require_torch

require_torch("exporting to ONNX")
require_onnxruntime("exporting to ONNX (the towers are checked against torch)")

from exporters.bundle import ExportConfig, export_bundle  # noqa: E402  (after the checks: needs both)
from gcl_vectordb.encoders.manifest import ExportManifest  # noqa: E402
from gcl_vectordb.errors import ExportError  # noqa: E402

__all__ = ["ExportConfig", "ExportError", "ExportManifest", "export_bundle"]
