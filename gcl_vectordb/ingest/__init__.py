"""Bulk ingest: a Marqo-GS dataset into a collection — decode ∥ encode ∥ upsert, resumable, idempotent.

    from gcl_vectordb.ingest import IngestConfig, ingest
    report = ingest(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                 model_ref="gcl-vdb-work/model"))
    print(report.points_written, report.rejects)

Names load on first use: decode worker processes import `gcl_vectordb.ingest.decode` only.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "IngestConfig": "gcl_vectordb.ingest.config",
    "IngestReport": "gcl_vectordb.ingest.config",
    "CorpusCounts": "gcl_vectordb.ingest.config",
    "default_state_dir": "gcl_vectordb.ingest.config",
    "ingest": "gcl_vectordb.ingest.run",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
