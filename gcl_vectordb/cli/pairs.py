"""Typed `key=value,key=value` option values (`--fields`, `--weights`, `--filter`), parsed without eval.

A malformed value is a usage error: `typer.BadParameter` names the option and what was expected, and
the command exits 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import typer


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """`"a=1, b=2"` → `{"a": "1", "b": "2"}`; empty keys or values, a missing `=`, a repeated key: error."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise typer.BadParameter(f"expected key=value pairs separated by commas, got {item.strip()!r}",
                                     param_hint=option)
        if key in pairs:
            raise typer.BadParameter(f"{key} is given twice", param_hint=option)
        pairs[key] = value
    return pairs


def parse_weights(text: str, option: str) -> dict[str, float]:
    """`"image=0.9,title=0.1"` → `{"image": 0.9, "title": 0.1}`: known fields, finite numbers ≥ 0, not all 0."""
    from gcl_vectordb.encoders.fusion import FIELDS

    weights = {}
    for key, value in parse_pairs(text, option).items():
        if key not in FIELDS:
            raise typer.BadParameter(f"unknown field {key!r}; weight {' and/or '.join(FIELDS)}",
                                     param_hint=option)
        try:
            weight = float(value)
        except ValueError:
            raise typer.BadParameter(f"{key}={value}: not a number", param_hint=option) from None
        if not math.isfinite(weight) or weight < 0:
            raise typer.BadParameter(f"{key}={value}: weights must be finite and ≥ 0", param_hint=option)
        weights[key] = weight
    if sum(weights.values()) <= 0:
        raise typer.BadParameter("at least one weight must be positive", param_hint=option)
    return weights


def parse_filters(values: Iterable[str], option: str) -> tuple[int | None, dict[str, str]]:
    """`--filter corpus=1 --filter brand=acme` (or `corpus=1,brand=acme`) → (corpus, other exact matches).

    `corpus` is an integer (1 or 2); every other payload field is matched as a string.
    """
    filters: dict[str, str] = {}
    for text in values:
        for key, value in parse_pairs(text, option).items():
            if key in filters:
                raise typer.BadParameter(f"{key} is given twice", param_hint=option)
            filters[key] = value
    corpus = filters.pop("corpus", None)
    if corpus is not None and corpus not in ("1", "2"):
        raise typer.BadParameter(f"corpus={corpus}: the corpus is 1 or 2", param_hint=option)
    return (int(corpus) if corpus is not None else None), filters
