"""Stream the entries of one big JSON object (`{key: value, ...}`) without loading the file.

A Marqo-GS `corpus_N.json` is a single object holding millions of products. `json.load` would build all of
them at once; `iter_json_object` decodes one entry at a time with `json.JSONDecoder.raw_decode` over a
rolling text buffer, so memory stays at about one buffer (1 MiB by default) plus the entry being decoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from gcl_vectordb.errors import DataError

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
MAX_ENTRY_CHARS = 64 << 20
"""An entry longer than this is taken as malformed (so a broken file cannot pull itself into memory)."""


class _Buffer:
    """A window onto the file: `text[pos:]` is what has not been consumed yet."""

    def __init__(self, handle: TextIO, chunk_chars: int) -> None:
        self.handle = handle
        self.chunk_chars = chunk_chars
        self.text = ""
        self.pos = 0
        self.eof = False

    def refill(self) -> bool:
        """Append the next chunk, dropping what was consumed; False at end of file."""
        if self.eof:
            return False
        chunk = self.handle.read(self.chunk_chars)
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        self.eof = not chunk
        return bool(chunk)

    def skip_whitespace(self) -> None:
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self.refill():
                return

    def peek(self) -> str:
        """The next non-whitespace character, or "" at end of file."""
        self.skip_whitespace()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def decode(self) -> Any:
        """Decode the next JSON value, reading more of the file while the value is incomplete."""
        self.skip_whitespace()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                # Incomplete at the buffer's end, or malformed: only more text can tell which.
                if len(self.text) - self.pos < MAX_ENTRY_CHARS and self.refill():
                    continue
                raise
            # A number that ends at the buffer's end may continue in the next chunk.
            if end == len(self.text) and not self.eof and self.refill():
                continue
            self.pos = end
            return value


def iter_json_object(path: Path, *, chunk_chars: int = 1 << 20) -> Iterator[tuple[str, Any]]:
    """Yield `(key, value)` of a top-level JSON object in file order, one entry in memory at a time.

    Raises `DataError` naming the file and the entry number when the file is not a JSON object.
    """
    with path.open("r", encoding="utf-8") as handle:
        buffer = _Buffer(handle, chunk_chars)
        entry = 0
        try:
            if buffer.peek() != "{":
                raise DataError(f"{path} is not a JSON object (expected '{{' at the start)")
            buffer.pos += 1
            if buffer.peek() == "}":
                return
            while True:
                entry += 1
                key = buffer.decode()
                if not isinstance(key, str) or buffer.peek() != ":":
                    raise DataError(f"{path}: entry {entry} is not a `\"key\": value` pair")
                buffer.pos += 1
                yield key, buffer.decode()
                separator = buffer.peek()
                buffer.pos += 1
                if separator == "}":
                    return
                if separator != ",":
                    raise DataError(f"{path}: expected ',' or '}}' after entry {entry}")
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: malformed JSON in entry {entry}: {exc.msg}",
                "the file may be truncated; download or generate it again",
            ) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not UTF-8 text ({exc.reason})") from None
