"""Bulk ingest: a Marqo-GS dataset into a collection — decode ∥ encode ∥ upsert, resumable, idempotent.

    from gcl_vectordb.ingest import IngestConfig, ingest
    report = ingest(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                 model_ref="gcl-vdb-work/model"))
    print(report.points_written, report.rejects)

Names load on first use: decode worker processes import `gcl_vectordb.ingest.decode` only.
The package itself is callable — `gcl_vectordb.ingest(config)` is `ingest(config)` — because the
top-level API exports the function under the package's own name (`import gcl_vectordb as gv;
gv.ingest(config)`), and Python binds `gcl_vectordb.ingest` to this package once it is imported.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from gcl_vectordb._lazy import lazy_attributes

_LAZY = {
    "IngestConfig": "gcl_vectordb.ingest.config",
    "IngestReport": "gcl_vectordb.ingest.config",
    "CorpusCounts": "gcl_vectordb.ingest.config",
    "default_state_dir": "gcl_vectordb.ingest.config",
    "ingest": "gcl_vectordb.ingest.run",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, _LAZY)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from gcl_vectordb.ingest.run import ingest

        return ingest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
