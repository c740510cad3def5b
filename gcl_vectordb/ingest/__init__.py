"""Bulk ingest: a Marqo-GS dataset into a collection — decode ∥ encode ∥ upsert, resumable, idempotent.

    from gcl_vectordb.ingest import IngestConfig, ingest_dataset
    report = ingest_dataset(IngestConfig(collection="gs10m", data=Path("gcl-vdb-work/data"),
                                         model_ref="gcl-vdb-work/model"))
    print(report.points_written, report.rejects)
"""

from gcl_vectordb.ingest.config import CorpusCounts, IngestConfig, IngestReport, default_state_dir
from gcl_vectordb.ingest.run import ingest_dataset

__all__ = ["CorpusCounts", "IngestConfig", "IngestReport", "default_state_dir", "ingest_dataset"]
