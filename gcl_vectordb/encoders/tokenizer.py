"""The CLIP byte-pair tokenizer in plain Python + numpy (no torch), for a fast-starting ONNX encoder.

Same semantics as open_clip's `SimpleTokenizer` with `clean="lower"` (the tokenizer of every CLIP-BPE
open_clip model): ftfy + double `html.unescape`, whitespace collapsed, lower case, the CLIP regex split,
byte-level BPE over the 16e6 merge list, then `<start_of_text> … <end_of_text>`, zero-padded or truncated
to the context length with the end token kept as the last token. A parity test checks it against
`open_clip.tokenize`.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import ftfy  # 70 ms to import; needed for exact parity with open_clip's cleaning
import numpy as np
import regex

from gcl_vectordb.errors import ModelError
from gcl_vectordb.extras import TRAIN_EXTRA

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
TOKENIZER_NAME = "clip-bpe"
_N_MERGES = 49152 - 256 - 2  # open_clip keeps the first 48894 merges of the file
_CACHE_LIMIT = 200_000  # distinct words remembered; ingesting millions of titles must not grow memory unbounded
_SPLIT_PATTERN = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def open_clip_vocab_path() -> Path:
    """Where open_clip keeps the BPE vocabulary, found without importing open_clip (which imports torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("open_clip is not installed, so the CLIP vocabulary cannot be found", TRAIN_EXTRA)
    return Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """Reversible byte → printable-character map used by CLIP's byte-level BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word[:-1], word[1:], strict=True))


class ClipTokenizer:
    """Text → `(n, context_length)` int64 token ids, identical to `open_clip.tokenize`.

    Example: `ClipTokenizer(vocab_path, 77)(["red summer dress"])` → array of shape (1, 77).
    """

    def __init__(self, vocab_path: Path | str, context_length: int = 77) -> None:
        if context_length < 2:
            raise ModelError(f"context length must be at least 2, got {context_length}")
        try:
            lines = gzip.open(vocab_path).read().decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read the BPE vocabulary {vocab_path}: {exc}",
                             "re-export the model bundle or reinstall open_clip") from exc
        merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
        if len(merges) != _N_MERGES or any(len(m) != 2 for m in merges):
            raise ModelError(f"{vocab_path} is not a CLIP BPE vocabulary (bad merge list)")
        vocab = list(_bytes_to_unicode().values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
        self.encoder: dict[str, int] = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.sot_id = self.encoder["<start_of_text>"]
        self.eot_id = self.encoder["<end_of_text>"]
        self.context_length = context_length
        self._byte_encoder = _bytes_to_unicode()
        self._cache: dict[str, str] = {t: t for t in ("<start_of_text>", "<end_of_text>")}
        self._pattern = regex.compile(_SPLIT_PATTERN, regex.IGNORECASE)
        self._fix_text = ftfy.fix_text

    def clean(self, text: str) -> str:
        """ftfy, HTML unescape (twice, as CLIP does), collapse whitespace, lower case."""
        text = html.unescape(html.unescape(self._fix_text(text))).strip()
        return " ".join(text.split()).lower()

    def bpe(self, token: str) -> str:
        """Merge the characters of one pre-token by rank order; returns space-separated BPE symbols."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = (*token[:-1], token[-1] + "</w>")
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            word = self._merge(word, bigram)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        result = " ".join(word)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {t: t for t in ("<start_of_text>", "<end_of_text>")}
        self._cache[token] = result
        return result

    @staticmethod
    def _merge(word: tuple[str, ...], bigram: tuple[str, str]) -> tuple[str, ...]:
        first, second = bigram
        merged: list[str] = []
        i = 0
        while i < len(word):
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        return tuple(merged)

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without start/end tokens."""
        ids: list[int] = []
        for token in self._pattern.findall(self.clean(text)):
            symbols = "".join(self._byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(symbols).split(" "))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """`(len(texts), context_length)` int64: start, ids, end, zero padding; long texts keep the end token."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out
