"""Split tables (one row per query–product pair): required columns, normalised dtypes, bad rows.

Both layouts (official CSV, Hugging Face parquet) read into the same frame:

| column            | dtype            | note                                               |
|-------------------|------------------|----------------------------------------------------|
| query, product_id | str              | required; an empty value rejects the row           |
| query_id, pair_id | str              | identifiers, whatever their type on disk            |
| position          | int64            | 1-based rank in the engine's result list           |
| score_linear, score_reciprocal, no_score | float64 | a non-numeric value rejects the row   |
| anything else     | as read          | kept                                               |

The weight column (`score_linear` unless told otherwise) is required and must be numeric in every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gcl_vectordb.data.records import Judgment, RejectLog
from gcl_vectordb.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_WEIGHT_COLUMN = "score_linear"
TEXT_COLUMNS: tuple[str, ...] = ("query", "product_id", "query_id", "pair_id", "title", "image_local")
SCORE_COLUMNS: tuple[str, ...] = ("score_linear", "score_reciprocal", "no_score")
JUDGMENT_COLUMNS: tuple[str, ...] = (
    "query", "product_id", "query_id", "position", "score_linear", "score_reciprocal", "no_score", "pair_id",
)


def required_columns(weight_column: str | None = DEFAULT_WEIGHT_COLUMN) -> tuple[str, ...]:
    """query, product_id and the weight column (None: a reader that needs no weights, e.g. query lists)."""
    return ("query", "product_id") if weight_column is None else ("query", "product_id", weight_column)


def check_columns(available: Iterable[str], *, source: str, weight_column: str | None) -> None:
    """Raise `DataError` naming every missing required column and the file."""
    present = set(available)
    missing = [column for column in required_columns(weight_column) if column not in present]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(sorted(present))})",
            "a split table needs query, product_id and its weight column (weight_column=...)",
        )


def selected_columns(
    available: Sequence[str], columns: Sequence[str] | None, weight_column: str | None
) -> list[str]:
    """The columns to read, in file order: all (columns=None) or the required ones plus `columns`."""
    if columns is None:
        return list(available)
    wanted = set(required_columns(weight_column)) | set(columns)
    return [column for column in available if column in wanted]


def _as_text(series: pd.Series) -> pd.Series:
    import pandas as pd  # 0.6 s: imported when a table is read, not by `import gcl_vectordb.data`

    if pd.api.types.is_float_dtype(series.dtype):
        values = series.dropna()
        if (values == np.floor(values)).all():  # integer ids that picked up NaN on the way
            series = series.astype("Int64")
    return series.astype("str")


def _shown(value: object) -> str:
    """A cell as people read it: numpy scalars as plain numbers, text quoted."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _numeric(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """`(float64 values, non_numeric mask)`; empty cells are NaN and not counted as non-numeric."""
    import pandas as pd  # 0.6 s: imported when a table is read, not by `import gcl_vectordb.data`

    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("float64"), np.zeros(len(series), dtype=bool)
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    return values, (values.isna() & series.notna()).to_numpy()


class _RowReporter:
    """Reports masked rows of one frame to a RejectLog with their 1-based row numbers in the source."""

    def __init__(self, frame: pd.DataFrame, source: str, rows: np.ndarray, rejects: RejectLog | None) -> None:
        self.frame, self.source, self.rows, self.rejects = frame, source, rows, rejects
        self.bad = np.zeros(len(frame), dtype=bool)

    def report(self, mask: np.ndarray, reason: str, detail_of) -> None:
        new = mask & ~self.bad
        self.bad |= mask
        if self.rejects is None:
            return
        ids = self.frame["product_id"]
        for i in np.flatnonzero(new):
            product_id = ids.iat[i]
            self.rejects.add(
                self.source, int(self.rows[i]), reason, detail_of(i),
                product_id=None if product_id is None or product_id != product_id else str(product_id),
            )


def normalise_split_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    rows: np.ndarray,
    weight_column: str | None = DEFAULT_WEIGHT_COLUMN,
    rejects: RejectLog | None = None,
) -> pd.DataFrame:
    """Normalise dtypes (table above); report bad rows (row, reason) and drop them.

    `rows` holds each frame row's 1-based data-row number in `source`, for the reports.
    """
    frame = frame.reset_index(drop=True)
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = _as_text(frame[column])
    reporter = _RowReporter(frame, source, rows, rejects)
    for column in ("query", "product_id"):
        text = frame[column]
        empty = (text.isna() | (text.str.strip() == "")).to_numpy()
        reporter.report(empty, "malformed-row", lambda i, c=column: f"empty {c}")
    for column in dict.fromkeys((*SCORE_COLUMNS, weight_column or SCORE_COLUMNS[0])):
        if column not in frame.columns:
            continue
        raw = frame[column]
        values, non_numeric = _numeric(raw)
        if column == weight_column:
            empty = values.isna().to_numpy() & ~non_numeric
            reporter.report(empty, "non-numeric-score", lambda i, c=column: f"{c} is empty")
        reporter.report(non_numeric, "non-numeric-score",
                        lambda i, c=column, r=raw: f"{c}={_shown(r.iat[i])}")
        frame[column] = values
    if "position" in frame.columns:
        raw = frame["position"]
        values, non_numeric = _numeric(raw)
        not_rank = non_numeric | values.isna().to_numpy() | (values.to_numpy() % 1 != 0)
        reporter.report(not_rank, "malformed-row",
                        lambda i, r=raw: f"position={_shown(r.iat[i])} is not an integer")
        frame["position"] = values.where(~not_rank, 0).astype("int64")
    if reporter.bad.any():
        frame = frame.loc[~reporter.bad].reset_index(drop=True)
    return frame


def _optional(values: list, kind) -> list:
    return [None if value is None or value != value else kind(value) for value in values]


def frame_to_judgments(frame: pd.DataFrame) -> list[Judgment]:
    """Rows of a normalised split frame as `Judgment` records (None where a column is absent or empty)."""
    n = len(frame)
    # In Judgment's field order (positional construction is ~2x faster for millions of rows).
    kinds = {"query_id": str, "position": int, "score_linear": float, "score_reciprocal": float,
             "no_score": float, "pair_id": str}
    fields = {
        column: _optional(frame[column].tolist(), kind) if column in frame.columns else [None] * n
        for column, kind in kinds.items()
    }
    return [
        Judgment(query, product_id, *row)
        for query, product_id, *row in zip(
            frame["query"].tolist(), frame["product_id"].tolist(), *(fields[c] for c in kinds), strict=True
        )
    ]
