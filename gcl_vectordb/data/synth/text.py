"""Titles and queries from attributes: the same facts as the image, in varied wording.

A title names all four attributes (synonyms, different orders, optional brand and extra words); a query
names 1–3 of them in natural English order — colour, pattern, material/style, category — as in
"red summer dress", "striped shirt", "leather bag". Two or three attributes always include a category.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from gcl_vectordb.data.synth.vocabulary import (
    BRANDS,
    EXTRA_WORDS,
    SHOWCASE_QUERIES,
    SLOTS,
    VALUES,
    words_for,
)

NO_VALUE = -1
QUERY_ORDER: tuple[int, ...] = (1, 2, 3, 0)  # colour, pattern, material, category (indices into SLOTS)
QUERY_SIZE_SHARE: dict[int, float] = {1: 0.1, 2: 0.4, 3: 0.5}
"""Share of 1-, 2- and 3-attribute queries asked for (the candidates are mostly 3-attribute ones)."""

_TEMPLATES: tuple[str, ...] = (
    "{brand} {colour} {pattern} {material} {category} {extra}",
    "{colour} {material} {category} with {pattern} pattern {extra}",
    "{brand} {category} in {colour} {pattern} {material}",
    "{brand} {category} - {colour}, {material}, {pattern} {extra}",
    "{pattern} {colour} {material} {category} | {brand}",
    "{extra} {material} {category} {colour} {pattern}",
)


def _tidy(title: str) -> str:
    """Remove what an empty word (no brand, no extra, pattern unsaid) leaves behind: gaps and separators."""
    title = " ".join(title.split()).replace(" ,", ",").replace(",,", ",").replace(" with pattern", "")
    return title.strip(" ,|-")


def make_titles(attributes: np.ndarray, brands: np.ndarray, rng: np.random.Generator) -> list[str]:
    """One title per product; `attributes` is `(n, 4)` indices into VALUES[SLOTS[j]], `brands` `(n,)`."""
    n = len(attributes)
    template = rng.integers(0, len(_TEMPLATES), n).tolist()
    variant = rng.integers(0, 1 << 30, (n, 4)).tolist()
    with_brand = (rng.random(n) < 0.6).tolist()
    extra = np.where(rng.random(n) < 0.4, rng.integers(0, len(EXTRA_WORDS), n), -1).tolist()
    title_case = (rng.random(n) < 0.5).tolist()
    words = [[words_for(slot, value) for value in VALUES[slot]] for slot in SLOTS]
    titles = []
    # Python lists, not numpy indexing, in this loop: it runs once per product (1M at full size)
    for values, choice, kind, brand, has_brand, more, upper in zip(
        attributes.tolist(), variant, template, brands.tolist(), with_brand, extra, title_case, strict=True
    ):
        picked = [words[j][values[j]][choice[j] % len(words[j][values[j]])] for j in range(4)]
        title = _tidy(_TEMPLATES[kind].format(
            category=picked[0], colour=picked[1], pattern=picked[2], material=picked[3],
            brand=BRANDS[brand] if has_brand else "", extra=EXTRA_WORDS[more] if more >= 0 else "",
        ))
        titles.append(title.title() if upper else title[:1].upper() + title[1:])
    return titles


@dataclass(frozen=True)
class QuerySet:
    """`texts[i]` names the attributes `attributes[i]` (`(m, 4)`, NO_VALUE where a slot is not asked)."""

    texts: tuple[str, ...]
    attributes: np.ndarray


def query_text(attributes: tuple[int, ...] | np.ndarray) -> str:
    return " ".join(VALUES[SLOTS[j]][attributes[j]] for j in QUERY_ORDER if attributes[j] != NO_VALUE)


def candidate_queries() -> list[tuple[int, ...]]:
    """Every distinct query, in a fixed order: single attributes, then category + 1, category + 2."""
    sizes = [len(VALUES[slot]) for slot in SLOTS]
    found: list[tuple[int, ...]] = []
    for slot, size in enumerate(sizes):
        for value in range(size):
            found.append(tuple(value if j == slot else NO_VALUE for j in range(4)))
    for extra_slots in (1, 2):
        for others in combinations(range(1, 4), extra_slots):
            grid = np.stack(np.meshgrid(*(range(sizes[j]) for j in (0, *others)), indexing="ij"), -1)
            for combo in grid.reshape(-1, 1 + extra_slots).tolist():
                attributes = [NO_VALUE] * 4
                for j, value in zip((0, *others), combo, strict=True):
                    attributes[j] = value
                found.append(tuple(attributes))
    return found


def max_queries() -> int:
    return len(candidate_queries())


def make_queries(count: int, rng: np.random.Generator) -> QuerySet:
    """`count` distinct queries: the showcase queries first, then a draw weighted to QUERY_SIZE_SHARE."""
    candidates = candidate_queries()
    if not 1 <= count <= len(candidates):
        raise ValueError(f"queries must be in 1..{len(candidates)}, got {count}")
    texts = [query_text(c) for c in candidates]
    chosen = [texts.index(q) for q in SHOWCASE_QUERIES[:count]]
    rest = np.setdiff1d(np.arange(len(candidates)), chosen)
    size = np.array([sum(v != NO_VALUE for v in candidates[i]) for i in rest])
    weight = np.array([QUERY_SIZE_SHARE[s] / np.sum(size == s) for s in size])
    drawn = rng.choice(rest, size=count - len(chosen), replace=False, p=weight / weight.sum())
    order = [*chosen, *drawn.tolist()]
    return QuerySet(tuple(texts[i] for i in order), np.array([candidates[i] for i in order], dtype=np.int8))


CAPTION_PREFIXES: tuple[str, ...] = ("a", "photo of a", "the", "this", "my new", "close-up of a")
"""Captions start with one of these; no query does, so a caption never equals a query."""
DESCRIPTION_ODDS = 0.5
"""Odds that a caption names each of colour, pattern and material (the category is always named)."""


def make_descriptions(attributes: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Short captions of products (`(n, 4)` attribute indices): a prefix, then each of colour, pattern and
    material with odds DESCRIPTION_ODDS in title wording, then the category — "a red dress", "photo of a
    striped linen shirt". Never equal to a query (the prefix) nor to a title (which never starts so)."""
    n = len(attributes)
    prefix = rng.integers(0, len(CAPTION_PREFIXES), n).tolist()
    named = (rng.random((n, 3)) < DESCRIPTION_ODDS).tolist()
    variant = rng.integers(0, 1 << 30, (n, 4)).tolist()
    out = []
    for values, start, keep, choice in zip(attributes.tolist(), prefix, named, variant, strict=True):
        words = [CAPTION_PREFIXES[start]]
        for slot, wanted in zip(QUERY_ORDER, [*keep, True], strict=True):  # colour, pattern, material, category
            forms = words_for(SLOTS[slot], VALUES[SLOTS[slot]][values[slot]])
            if wanted:
                words.append(forms[choice[slot] % len(forms)])
        out.append(" ".join(" ".join(words).split()))
    return out
