"""Marqo-GS datasets: typed records, a streaming reader for both layouts, the synthetic generator, info.

    from gcl_vectordb.data import open_dataset, RejectLog
    dataset = open_dataset("gcl-vdb-work/data")
    for batch in dataset.iter_products(1, batch_size=256, rejects=(rejects := RejectLog())):
        ...
    table = dataset.read_split("in-domain")          # pandas, normalised dtypes

The generator (`gcl_vectordb.data.synth`) and `dataset_info` are imported from their modules.
"""

from gcl_vectordb.data.dataset import Dataset, Layout
from gcl_vectordb.data.images import ImageRejected, ImageResolver, contained_file, decode_image
from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.data.records import (
    CORPORA,
    REJECT_REASONS,
    RETRYABLE_REASONS,
    SPLITS,
    Judgment,
    Product,
    Reject,
    RejectLog,
    Split,
    get_split,
)
from gcl_vectordb.data.tables import DEFAULT_WEIGHT_COLUMN
from gcl_vectordb.errors import DataError

__all__ = [
    "CORPORA",
    "DEFAULT_WEIGHT_COLUMN",
    "REJECT_REASONS",
    "RETRYABLE_REASONS",
    "SPLITS",
    "DataError",
    "Dataset",
    "ImageRejected",
    "ImageResolver",
    "Judgment",
    "Layout",
    "Product",
    "Reject",
    "RejectLog",
    "Split",
    "contained_file",
    "decode_image",
    "get_split",
    "open_dataset",
]
