"""ONNX export of open_clip towers into self-contained, verified bundles (see `export_bundle`).

Imported only by the `gcl-vdb export` command (lazily) and by tests; `gcl_vectordb` never imports it.
"""

from exporters.bundle import ExportConfig, export_bundle
from gcl_vectordb.encoders.manifest import ExportManifest
from gcl_vectordb.errors import ExportError

__all__ = ["ExportConfig", "ExportError", "ExportManifest", "export_bundle"]
