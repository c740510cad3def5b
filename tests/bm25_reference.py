"""An independent BM25 for checking the engine's: our own tokeniser, PyStemmer's Snowball English stems,
NLTK's English stop words, and either a plain-Python scorer or rank_bm25's.

Tokenisation as Qdrant's word tokenizer documents it: split at every character that is not alphanumeric,
lowercase, drop stop words, stem. Scores as docs/protocol.md ("Keyword search (BM25)") defines them,
with a collection-fixed `avg_len` — or the corpus mean, rank_bm25's own choice, to measure what the
fixed value changes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import Stemmer
from rank_bm25 import BM25Okapi

from gcl_vectordb.store.bm25 import Bm25Settings

# NLTK's English stop word list (the one Qdrant's "english" language uses); words with an apostrophe
# can never match a token of the word tokenizer, which splits at the apostrophe.
NLTK_ENGLISH_STOPWORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him
his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
whom this that that'll these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here there when
where why how all any both each few more most other some such no nor not only own same so than too very s
t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn
didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())

_STEMMER = Stemmer.Stemmer("english")


def tokens(text: str | None) -> list[str]:
    """Word tokens: alphanumeric runs, lowercased, stop words dropped, Snowball English stems."""
    if not text:
        return []
    words, current = [], []
    for char in text:
        if char.isalnum():
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    kept = [word.lower() for word in words if word.lower() not in NLTK_ENGLISH_STOPWORDS]
    return _STEMMER.stemWords(kept)


def idf(n_docs: int, doc_freq: int) -> float:
    return math.log(1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def bm25_scores(
    titles: Sequence[str | None], query: str, settings: Bm25Settings, population: np.ndarray | None = None
) -> dict[int, float]:
    """Plain-Python BM25 of every document (index into `titles`) that shares a term with `query`.

    The IDF counts the documents with at least one token among `population` (a bool mask; all if None);
    only documents of the population are scored.
    """
    docs = [Counter(tokens(t)) for t in titles]
    members = [i for i, d in enumerate(docs) if d and (population is None or population[i])]
    k, b, avg_len = settings.k, settings.b, settings.avg_len
    scores: dict[int, float] = {}
    for term in set(tokens(query)):
        df = sum(1 for i in members if term in docs[i])
        weight = idf(len(members), df)
        for i in members:
            tf = docs[i][term]
            if tf:
                length = sum(docs[i].values())
                scores[i] = scores.get(i, 0.0) + weight * tf * (k + 1) / (tf + k * (1 - b + b * length / avg_len))
    return scores


class QdrantIdfBm25(BM25Okapi):
    """rank_bm25's Okapi BM25 (its term counting, lengths and scoring loop) with two settings put in:
    Qdrant's IDF, ln(1 + (N − n + 0.5) / (n + 0.5)), instead of Okapi's floored ln((N − n + 0.5) / (n + 0.5));
    and optionally a fixed average length instead of the corpus mean."""

    def __init__(self, corpus: list[list[str]], settings: Bm25Settings, fixed_avg_len: bool) -> None:
        super().__init__(corpus, k1=settings.k, b=settings.b)
        if fixed_avg_len:
            self.avgdl = settings.avg_len

    def _calc_idf(self, nd: Mapping[str, int]) -> None:
        self.idf = {word: idf(self.corpus_size, freq) for word, freq in nd.items()}


def rank_bm25_top(
    titles: Sequence[str | None], ids: Sequence[str], queries: Iterable[str], settings: Bm25Settings, k: int,
    fixed_avg_len: bool = True,
) -> dict[str, list[tuple[str, float]]]:
    """Per query, rank_bm25's top-k (product id, score) over the titled documents, best first."""
    kept = [(pid, tokens(t)) for pid, t in zip(ids, titles, strict=True)]
    kept = [(pid, toks) for pid, toks in kept if toks]
    model = QdrantIdfBm25([toks for _, toks in kept], settings, fixed_avg_len)
    tops = {}
    for query in queries:
        scores = model.get_scores(sorted(set(tokens(query))))  # a query term counts once
        order = np.argsort(-scores, kind="stable")[:k]
        tops[query] = [(kept[i][0], float(scores[i])) for i in order if scores[i] > 0]
    return tops


def same_top(engine: Sequence[tuple[str, float]], reference: Sequence[tuple[str, float]], rtol: float = 1e-5) -> bool:
    """The same ranking up to the order of tied scores: equal score sequences (float32 tolerance) and the
    same products strictly above the last score (which of several products tied there a top-k keeps is
    either implementation's choice)."""
    if len(engine) != len(reference):
        return False
    if not np.allclose([s for _, s in engine], [s for _, s in reference], rtol=rtol, atol=1e-6):
        return False
    if not engine:
        return True
    cutoff = reference[-1][1] * (1 + rtol) + 1e-6
    above = {p for p, s in engine if s > cutoff}
    return above == {p for p, s in reference if s > cutoff}
