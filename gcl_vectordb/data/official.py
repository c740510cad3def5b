"""The official Marqo-GS layout: `corpus_N.json` objects and one CSV per split (gcl_vectordb.data.dataset)."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np

from gcl_vectordb.data.dataset import Candidate, Dataset, RawChunk
from gcl_vectordb.data.idset import CompactIdSet, hash_ids
from gcl_vectordb.data.jsonstream import iter_json_object
from gcl_vectordb.data.records import CORPORA, SPLITS, Partition, Product, RejectLog, Split
from gcl_vectordb.data.tables import TEXT_COLUMNS, check_columns, selected_columns
from gcl_vectordb.errors import DataError

CHUNK_ENTRIES = 4096
_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")
_CORPUS_FIELDS = ("title", "image_local")


def corpus_path(root: Path, corpus: int) -> Path:
    return root / f"corpus_{corpus}.json"


class OfficialDataset(Dataset):
    """`corpus_1.json`, `corpus_2.json` and `<stem>.csv` per split (docs/protocol.md,
    "The official layout")."""

    layout = "official"

    def __init__(self, root: Path, images_dir: Path | None = None) -> None:
        super().__init__(root, images_dir)
        self._counts: dict[int, int] = {}

    @property
    def splits(self) -> tuple[Split, ...]:
        return tuple(split for split in SPLITS if self.split_path(split).is_file())

    @property
    def corpora(self) -> tuple[int, ...]:
        return tuple(corpus for corpus in CORPORA if corpus_path(self.root, corpus).is_file())

    def split_path(self, split: Split) -> Path:
        return self.root / f"{split.stem}.csv"

    def _corpus_file(self, corpus: int) -> Path:
        path = corpus_path(self.root, corpus)
        if not path.is_file():
            raise DataError(f"{path} is missing", "the official layout needs corpus_1.json and corpus_2.json")
        return path

    def count_products(self, corpus: int) -> int:
        if corpus not in self._counts:
            self._counts[corpus] = sum(1 for _ in iter_json_object(self._corpus_file(corpus)))
        return self._counts[corpus]

    def _candidates(self, corpus: int, partition: Partition) -> Iterator[list[Candidate]]:
        path = self._corpus_file(corpus)
        seen = CompactIdSet()
        entries = iter_json_object(path)
        row = 0
        while chunk := list(islice(entries, CHUNK_ENTRIES)):
            hashes = hash_ids([key for key, _ in chunk])
            repeated = seen.add_hashes(hashes)
            owned = partition.owns(hashes).tolist()
            candidates = []
            for (product_id, fields), is_repeat, mine in zip(chunk, repeated.tolist(), owned, strict=True):
                row += 1
                if not mine:
                    continue
                if is_repeat:
                    candidates.append(Candidate(path.name, row, product_id, None, "duplicate-product-id",
                                                "the id appears earlier in the file; the first one is kept"))
                elif not isinstance(fields, dict):
                    candidates.append(Candidate(path.name, row, product_id, None, "malformed-row",
                                                f"expected an object, got {type(fields).__name__}"))
                else:
                    candidates.append(_candidate(path.name, row, product_id, fields, corpus))
            yield candidates

    def _raw_split_chunks(
        self,
        split: Split,
        columns: Sequence[str] | None,
        chunk_rows: int,
        weight_column: str | None,
        rejects: RejectLog | None,
    ) -> Iterator[RawChunk]:
        import pandas as pd  # 0.6 s: imported when a split is read, not by `import gcl_vectordb.data`

        path = self.split_path(split)
        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{path.name} has no readable header row ({exc})", "download or generate it again"
            ) from None
        check_columns(header, source=path.name, weight_column=weight_column)
        usecols = selected_columns(header, columns, weight_column)
        reader = pd.read_csv(
            # all columns: usecols=None, as a column subset makes the parser accept lines with extra fields
            path, usecols=None if columns is None else usecols, chunksize=chunk_rows, on_bad_lines="warn",
            dtype={column: str for column in TEXT_COLUMNS if column in usecols},
            keep_default_na=False, na_values=[""],
        )
        skipped: list[int] = []  # data-row numbers of malformed lines, sorted
        parsed = 0
        while (frame := _next_chunk(reader, path.name, skipped, rejects)) is not None:
            yield RawChunk(frame, path.name, _data_rows(parsed, len(frame), skipped))
            parsed += len(frame)
        if parsed == 0:
            yield RawChunk(pd.DataFrame({c: pd.Series(dtype="str") for c in usecols}), path.name, np.zeros(0))

    def queries(self, split: Split | str) -> dict[str, str]:
        """From `<stem>_queries.json` where present (`{query_id: text}` or `{text: id}`), else the CSV."""
        resolved = self.split(split)
        path = self.root / f"{resolved.stem}_queries.json"
        if not path.is_file():
            return super().queries(resolved)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(loaded, list):
            return {str(i): str(text) for i, text in enumerate(loaded)}
        if isinstance(loaded, dict):
            if all(isinstance(v, str) for v in loaded.values()):
                return {str(k): v for k, v in loaded.items()}
            if all(isinstance(v, int) for v in loaded.values()):
                return {str(v): k for k, v in loaded.items()}
        raise DataError(
            f"{path}: expected {{query_id: query text}}", "remove the file to derive queries from the CSV"
        )


def _candidate(source: str, row: int, product_id: str, fields: dict, corpus: int) -> Candidate:
    image_local = fields.get("image_local")
    extra = {k: str(v) for k, v in fields.items() if k not in _CORPUS_FIELDS and v is not None}
    product = Product(product_id=product_id, title=_title(fields.get("title")), corpus=corpus, extra=extra)
    return Candidate(source, row, product_id, product, image_local=str(image_local) if image_local else None)


def _title(value: object) -> str | None:
    """None where the official reader's `pd.notna` is False (null, a missing key, NaN); else the text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _next_chunk(reader, source: str, skipped: list[int], rejects: RejectLog | None):
    """The reader's next chunk (None at the end); malformed lines it skipped are reported as rejects."""
    import pandas as pd  # 0.6 s: imported when a split is read (already there: _raw_split_chunks)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = next(reader, None)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:  # e.g. a quote left open to the end
            raise DataError(f"{source} cannot be parsed as CSV: {exc}", "the file may be truncated") from None
    for warning in caught:
        for line, reason in _BAD_LINE.findall(str(warning.message)):
            row = int(line) - 1  # line 1 is the header
            skipped.append(row)
            if rejects is not None:
                rejects.add(source, row, "malformed-row", reason.strip())
    skipped.sort()
    return frame


def _data_rows(parsed: int, count: int, skipped: list[int]) -> np.ndarray:
    """1-based data-row numbers of parsed rows `parsed … parsed+count-1`, counting the skipped lines.

    The k-th kept row is row k + #{skipped s_j : s_j − (j−1) ≤ k} (the k-th number not in `skipped`).
    """
    kept = np.arange(parsed + 1, parsed + count + 1)
    if not skipped:
        return kept
    shifted = np.asarray(skipped) - np.arange(len(skipped))
    return kept + np.searchsorted(shifted, kept, side="right")
