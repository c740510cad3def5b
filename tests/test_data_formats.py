"""Low-level pieces of the reader: streaming JSON objects and the compact id set, against references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.data.idset import CompactIdSet
from gcl_vectordb.data.jsonstream import iter_json_object
from gcl_vectordb.errors import DataError

TRICKY = {
    "a": {"title": "Comma, colon: and \"quotes\"", "n": 1},
    "b\u00e9": {"title": "{not an object}", "nested": {"x": [1, 2, {"y": "}"}]}},
    "c": 1234567890123456789,
    "d": [],
    "e": "\\u escape \u2603",
    "f": None,
    "g": -0.25,
}


@pytest.mark.parametrize("buffer_bytes", [1, 3, 7, 64, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_json_object_stream_matches_json_load(tmp_path: Path, buffer_bytes: int, indent: int | None) -> None:
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps(TRICKY, indent=indent, ensure_ascii=buffer_bytes % 2 == 0), encoding="utf-8")
    assert list(iter_json_object(path, buffer_bytes=buffer_bytes)) == list(json.load(path.open()).items())


def test_json_object_stream_keeps_duplicate_keys_in_order(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"x": 1, "y": 2, "x": 3}')
    assert list(iter_json_object(path, buffer_bytes=2)) == [("x", 1), ("y", 2), ("x", 3)]


def test_json_object_stream_empty_object_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  { }  ")
    assert list(iter_json_object(path)) == []
    path.write_bytes(b"\xef\xbb\xbf\n" + json.dumps(TRICKY).encode())  # what Windows editors write
    assert list(iter_json_object(path)) == list(TRICKY.items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[1, 2]", "is not a JSON object"),
        (b"", "is not a JSON object"),
        (b'{"a": 1, "b": {"t": "x"', r"malformed JSON \(1 entries read before it\): parse error: premature EOF"),
        (b'{"a": 1 "b": 2}', "malformed JSON .*: parse error: .* expect ',' or '}'"),
        (b'{"a": 1, 5: 2}', "malformed JSON .*: parse error: invalid object key"),
        (b'{"a": {"t": "\xff"}}', "malformed JSON .*: lexical error: invalid bytes in UTF8"),
        (b'{"a": 1} {', r"malformed JSON \(1 entries read before it\): parse error: trailing garbage"),
    ],
)
def test_json_object_stream_reports_bad_files(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    with pytest.raises(DataError, match=message) as caught:
        list(iter_json_object(path, buffer_bytes=4))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("size", [1, 100, 5000])
def test_compact_id_set_matches_python_set(size: int) -> None:
    rng = np.random.default_rng(size)
    ids = [f"id-{v}" for v in rng.integers(0, size, 3 * size)]  # plenty of repeats
    compact, reference = CompactIdSet(), set()
    expected, got = [], []
    for start in range(0, len(ids), 97):
        batch = ids[start : start + 97]
        got.extend(compact.add_batch(batch).tolist())
        for value in batch:
            expected.append(value in reference)
            reference.add(value)
    assert got == expected
    assert len(compact) == len(reference)
