"""Options shared by several commands, declared once, and the parsers of typed option values.

Settings resolve as flag > environment variable > `gcl-vdb.toml` > default (`gcl_vectordb.settings`);
each setting's help names its environment variable. `key=value` values (`--fields`, `--weights`,
`--filter`) are parsed without eval into domain types; a malformed value is a usage error (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from gcl_vectordb.domain import FieldWeights, parse_pairs
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.settings import DEFAULTS, ENV_VARS
from gcl_vectordb.store.storage import PRESETS


def _setting_help(text: str, key: str) -> str:
    return f"{text} (default: the `{key}` setting — env var {ENV_VARS[key]}, then gcl-vdb.toml, then {DEFAULTS[key]!r})"


QdrantOption = Annotated[
    str | None,
    typer.Option(
        "--qdrant", metavar="PATH|URL", show_default=False,
        help=_setting_help("Store folder (embedded Qdrant engine) or http(s):// URL of a Qdrant server; the "
                           "server's API key comes from $QDRANT_API_KEY.", "store"),
    ),
]
CollectionOption = Annotated[
    str | None,
    typer.Option("--collection", show_default=False, help=_setting_help("Collection name.", "collection")),
]
DataOption = Annotated[
    Path | None,
    typer.Option("--data", metavar="DIR", show_default=False,
                 help=_setting_help("Dataset folder (Marqo-GS official or parquet layout).", "data")),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", show_default=False,
                 help=_setting_help("ONNX bundle folder, checkpoint, run folder or architecture.", "model")),
]
ImagesDirOption = Annotated[
    Path | None,
    typer.Option("--images-dir", metavar="DIR", show_default=False,
                 help="Images folder: the dataset's image paths are found in it, and no image outside it is "
                      "read; default: the collection's (ingest), else DATA/images, else a sibling images* folder."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", metavar="PRESET", show_default=False,
                 help=f"How a new collection stores its vectors: {', '.join(PRESETS)} (default: ram; an "
                      "existing collection keeps its own)."),
]
StorageSetOption = Annotated[
    str | None,
    typer.Option("--storage-set", metavar="KEY=VALUE,...", show_default=False,
                 help="Change the storage preset: [image|title|fused.]OPTION=VALUE with OPTION datatype "
                      "(float32|float16), on_disk, quantization (none|int8|binary), quantile, always_ram, "
                      "hnsw (on|off), hnsw_m, hnsw_ef_construct; or oversampling=N, rescore=true|false. "
                      "E.g. image.hnsw=off,title.hnsw=off"),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=0, help="Image decoding processes; default: one per CPU; 0: decode in a thread."),
]


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
