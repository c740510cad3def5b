"""Typed `key=value,key=value` option values (`--fields`, `--weights`, `--filter`), parsed without eval.

A malformed value is a usage error: `typer.BadParameter` names the option and what was expected, and
the command exits 2.
"""

from __future__ import annotations

from collections.abc import Iterable

import typer

from gcl_vectordb.domain import FieldWeights, parse_pairs
from gcl_vectordb.errors import ConfigError


def parse_weights(text: str, option: str) -> FieldWeights:
    """`"image=0.9,title=0.1"` → `FieldWeights`; anything `FieldWeights.parse` refuses is a usage error."""
    try:
        return FieldWeights.parse(text, option)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def parse_filters(values: Iterable[str], option: str) -> tuple[int | None, dict[str, str]]:
    """`--filter corpus=1 --filter brand=acme` (or `corpus=1,brand=acme`) → (corpus, other exact matches).

    `corpus` is an integer (1 or 2); every other payload field is matched as a string.
    """
    filters: dict[str, str] = {}
    try:
        for text in values:
            for key, value in parse_pairs(text, option).items():
                if key in filters:
                    raise ConfigError(f"{option}: {key} is given twice")
                filters[key] = value
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    corpus = filters.pop("corpus", None)
    if corpus is not None and corpus not in ("1", "2"):
        raise typer.BadParameter(f"corpus={corpus}: the corpus is 1 or 2", param_hint=option)
    return (int(corpus) if corpus is not None else None), filters
