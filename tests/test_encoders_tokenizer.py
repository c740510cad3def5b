"""The numpy CLIP tokenizer reproduces open_clip.tokenize (the reference) token for token."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest

from gcl_vectordb.encoders import ClipTokenizer
from gcl_vectordb.encoders.tokenizer import open_clip_vocab_path

TEXTS = [
    "red summer dress",
    "",
    "   ",
    "Hello, World!!! &amp; <b>bold</b> &lt;tag&gt; &amp;amp;",
    "Café naïve Ångström façade — “quotes” ‘single’ …",
    "日本語のテキスト 中文 한국어 русский текст ελληνικά",
    "emoji 😀👗👠 and symbols ©®™ §¶ ±×÷",
    "don't won't I'll we've they're she'd it's",
    "mojibake: Ã©tÃ© and â€™",
    "12345 3.14 $99.99 50% off!!! #1 @brand",
    "tabs\tand\nnewlines\r\n  and   spaces",
    "UPPER lower MiXeD CaSe",
    "striped " * 100,  # truncated: the end token must stay last
    "a" * 300,  # one very long word
]


@pytest.fixture(scope="module")
def tokenizer() -> ClipTokenizer:
    return ClipTokenizer(open_clip_vocab_path(), context_length=77)


def test_matches_open_clip_tokenize(tokenizer: ClipTokenizer) -> None:
    got = tokenizer(TEXTS)
    expected = open_clip.tokenize(TEXTS).numpy()
    assert got.dtype == np.int64 and got.shape == (len(TEXTS), 77)
    np.testing.assert_array_equal(got, expected)


def test_other_context_length_matches_and_keeps_end_token() -> None:
    short = ClipTokenizer(open_clip_vocab_path(), context_length=16)
    got = short(TEXTS)
    np.testing.assert_array_equal(got, open_clip.tokenize(TEXTS, context_length=16).numpy())
    long_row = got[TEXTS.index("striped " * 100)]
    assert long_row[0] == short.sot_id and long_row[-1] == short.eot_id


def test_empty_text_is_start_end_then_padding(tokenizer: ClipTokenizer) -> None:
    row = tokenizer([""])[0]
    assert row[:2].tolist() == [tokenizer.sot_id, tokenizer.eot_id]
    assert not row[2:].any()
    assert tokenizer([]).shape == (0, 77)
