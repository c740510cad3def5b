"""gcl-vdb: ranking-aware multimodal product search — GCL fine-tuning, ONNX towers, Qdrant, evaluation.

Python API — the functions the CLI calls, for embedding gcl-vdb in your own service:

    from pathlib import Path

    import gcl_vectordb as gv

    if __name__ == "__main__":  # ingest decodes images in worker processes, which import this file
        report = gv.ingest_dataset(gv.IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                                   model_ref="gcl-vdb-work/model", store="gcl-vdb-store"))
        print(f"{report.points_written} points written, rejected: {report.rejects}")

        with gv.open_store("gcl-vdb-store") as store:  # keep it open: one process holds a collection
            result = gv.search_products(store, "gs10m", "red summer dress", mode="rrf", limit=10)
        for hit in result.hits:
            print(hit.rank, f"{hit.score:.3f}", hit.product_id, hit.title)
        gv.write_results_page(result, Path("results.html"))

        report = gv.evaluate(gv.EvalConfig(splits=("novel-doc",), collection="gs10m", store="gcl-vdb-store"))
        print(report.splits[0].headline())  # NDCG@10, mERR, mRBP7/8/9, MAP@1000, MRR@1000

Names are imported on first use, so `import gcl_vectordb` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The CLI lives in this package, so this module runs before every `gcl-vdb` command: the API's names are
# imported on first use (PEP 562), so that a cold `gcl-vdb query` never pays for pandas, qdrant_client or torch.
_MODULES = {
    "IngestConfig": "gcl_vectordb.ingest.config",
    "IngestReport": "gcl_vectordb.ingest.config",
    "ingest_dataset": "gcl_vectordb.ingest.run",
    "QueryConfig": "gcl_vectordb.search.query",
    "QueryHit": "gcl_vectordb.search.query",
    "QueryResult": "gcl_vectordb.search.query",
    "query": "gcl_vectordb.search.query",
    "search_products": "gcl_vectordb.search.query",
    "results_page": "gcl_vectordb.search.html",
    "write_results_page": "gcl_vectordb.search.html",
    "open_store": "gcl_vectordb.store",
    "SearchRequest": "gcl_vectordb.store",
    "StorageOptions": "gcl_vectordb.store",
    "load_encoder": "gcl_vectordb.encoders",
    "EvalConfig": "gcl_vectordb.evaluation.runner",
    "EvalReport": "gcl_vectordb.evaluation.report",
    "evaluate": "gcl_vectordb.evaluation.runner",
    "open_dataset": "gcl_vectordb.data",
}

__all__ = ["__version__", *sorted(_MODULES)]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value
