"""`open_dataset(root)`: detect which Marqo-GS layout a folder holds and open it as a `Dataset`."""

from __future__ import annotations

from pathlib import Path

from gcl_vectordb.data.dataset import DATA_HINT, Dataset
from gcl_vectordb.data.official import OfficialDataset, corpus_path
from gcl_vectordb.data.parquet_layout import ParquetDataset, parquet_files
from gcl_vectordb.data.records import CORPORA
from gcl_vectordb.errors import DataError


def open_dataset(root: Path | str, *, images_dir: Path | None = None) -> Dataset:
    """Open a Marqo-GS folder: the official layout where a `corpus_N.json` is present, else the parquet
    layout; `images_dir`: see `gcl_vectordb.data.dataset.default_images_dir`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist", DATA_HINT)
    if any(corpus_path(root, corpus).is_file() for corpus in CORPORA):
        return OfficialDataset(root, images_dir)
    files = parquet_files(root)
    if files:
        return ParquetDataset(root, files, images_dir)
    nested = sorted(p.parent.name for p in root.glob("*/corpus_1.json"))
    where = f"; datasets found in sub-folders: {', '.join(nested)}" if nested else ""
    raise DataError(
        f"{root} holds no Marqo-GS dataset: expected corpus_1.json (official layout) or "
        f"<split>-*.parquet files (Hugging Face layout){where}",
        DATA_HINT,
    )
