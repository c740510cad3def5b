"""How a collection stores its vectors, chosen once at creation (docs/architecture.md, "Storage options").

Per named vector (`image`, `title`, `fused`): the datatype of the original vectors (float32 or float16),
whether they live in RAM or on disk (memory-mapped), a quantized copy for fast approximate search
(none, int8 scalar, or binary) and whether that copy is kept in RAM, and the HNSW graph (its `m` and
`ef_construct`, or no graph at all: searches on that vector scan). For the whole collection: how
approximate searches use the quantized copy by default — `rescore` the best candidates with the
original vectors, after fetching `oversampling` × limit of them.

Memory per product and vector, dim 512: float32 2 KiB, float16 1 KiB, int8 copy 0.5 KiB, binary 64 B.
At 10M products × 3 vectors: float32 in RAM 61 GB; `int8-disk` keeps 15 GB of int8 codes in RAM and the
originals on disk; `float16` 31 GB in RAM.

Exact searches (`SearchRequest(exact=True)`, what `evaluate` uses) always read the original vectors,
whatever the quantization. float16 originals are themselves rounded (relative error ≤ 2⁻¹¹ per
component) and the engine rounds the query to float16 as well, so exact scores on a float16 collection
differ from float32 ones by ~1e-4.

Default oversampling, measured (docs/architecture.md, "Storage options"): int8 with rescoring reaches
recall@10 0.968 at 1 and 1.000 from 1.5 on, so `int8-disk` takes 2; binary needs 6 (0.992; 0.79 at 3).

    storage = StorageOptions.preset("int8-disk").with_settings("image.hnsw=off,title.hnsw=off")
    store.create_collection(CollectionRecord("gs10m", model_ref="model/", dim=512, storage=storage))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gcl_vectordb.domain import DOCUMENT_FIELDS, parse_pairs
from gcl_vectordb.errors import ConfigError

VECTOR_NAMES: tuple[str, ...] = (*DOCUMENT_FIELDS, "fused")
"""Named dense vectors of every collection (cosine): one per document field, and `fused` =
normalize(Σ α_f · e_f), always present. `rrf` and `weighted` searches combine the field vectors.
Collections made since keyword search exists also hold the sparse vector `bm25` (`store.bm25`), which
the storage options leave as the engine keeps it."""
DEFAULT_OVERSAMPLING = 2.0


class Datatype(StrEnum):
    """The datatype of the stored original vectors."""

    float32 = "float32"
    float16 = "float16"


class Quantization(StrEnum):
    """The quantized copy searched first by approximate searches: none, int8 (4× smaller than float32,
    scalar: each component mapped to 256 levels between the `quantile` bounds) or binary (32× smaller,
    one bit per component)."""

    none = "none"
    int8 = "int8"
    binary = "binary"


@dataclass(frozen=True)
class VectorStorage:
    """The storage of one named vector.

    `hnsw_m`: edges per node of the HNSW graph; None = the engine's default (16), 0 = no graph (a search
    on this vector scans all of them, through the quantized copy if there is one). `hnsw_ef_construct`:
    candidates while building the graph (None = the engine's 100). `quantile` (int8 only): the fraction
    of values the int8 range covers, in [0.5, 1] (None = 1, all). `always_ram`: keep the quantized copy in
    RAM even when the originals are on disk.
    """

    datatype: Datatype = Datatype.float32
    on_disk: bool = False
    quantization: Quantization = Quantization.none
    quantile: float | None = None
    always_ram: bool = True
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "datatype", _choice(Datatype, self.datatype, "datatype"))
        object.__setattr__(self, "quantization", _choice(Quantization, self.quantization, "quantization"))
        for name in ("on_disk", "always_ram"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"storage option {name} must be true or false, got {getattr(self, name)!r}")
        if self.quantile is not None:
            if self.quantization is not Quantization.int8:
                raise ConfigError("storage option quantile applies to int8 quantization only",
                                  "set quantization=int8, or leave quantile out")
            if not _number(self.quantile) or not 0.5 <= self.quantile <= 1.0:
                raise ConfigError(f"storage option quantile must be in [0.5, 1], got {self.quantile!r}")
        if self.hnsw_m is not None and not _integer(self.hnsw_m, minimum=0):
            raise ConfigError(f"storage option hnsw_m must be an integer ≥ 0 (0: no graph), got {self.hnsw_m!r}")
        if self.hnsw_ef_construct is not None and not _integer(self.hnsw_ef_construct, minimum=4):
            raise ConfigError(f"storage option hnsw_ef_construct must be an integer ≥ 4, got {self.hnsw_ef_construct!r}")

    @property
    def indexed(self) -> bool:
        """Whether this vector gets an HNSW graph."""
        return self.hnsw_m != 0

    def describe(self) -> str:
        """One line, e.g. `float32 on disk, int8 copy in RAM (quantile 0.99), HNSW m 16`."""
        parts = [f"{self.datatype.value} {'on disk' if self.on_disk else 'in RAM'}"]
        if self.quantization is not Quantization.none:
            where = "in RAM" if self.always_ram else "on disk"
            quantile = f" (quantile {self.quantile:g})" if self.quantile is not None else ""
            parts.append(f"{self.quantization.value} copy {where}{quantile}")
        if not self.indexed:
            parts.append("no HNSW graph (searches scan)")
        else:
            m = self.hnsw_m if self.hnsw_m is not None else "default"
            ef = f", ef_construct {self.hnsw_ef_construct}" if self.hnsw_ef_construct is not None else ""
            parts.append(f"HNSW m {m}{ef}")
        return ", ".join(parts)


@dataclass(frozen=True)
class StorageOptions:
    """The storage of a collection: one `VectorStorage` per named vector, and how approximate searches
    use quantized copies by default (`rescore` with the originals, `oversampling` ≥ 1 × limit
    candidates). `name` is the preset it was built from, with `+` when settings changed it."""

    vectors: Mapping[str, VectorStorage] = field(default_factory=lambda: {v: VectorStorage() for v in VECTOR_NAMES})
    oversampling: float = DEFAULT_OVERSAMPLING
    rescore: bool = True
    name: str = "ram"

    def __post_init__(self) -> None:
        vectors = dict(self.vectors)
        if set(vectors) != set(VECTOR_NAMES) or not all(isinstance(v, VectorStorage) for v in vectors.values()):
            raise ConfigError(f"storage options need a VectorStorage for each of {', '.join(VECTOR_NAMES)}, "
                              f"got {sorted(vectors)}")
        object.__setattr__(self, "vectors", {name: vectors[name] for name in VECTOR_NAMES})
        if not _number(self.oversampling) or not 1.0 <= self.oversampling <= 100.0:
            raise ConfigError(f"storage option oversampling must be a number in [1, 100], got {self.oversampling!r}")
        if not isinstance(self.rescore, bool):
            raise ConfigError(f"storage option rescore must be true or false, got {self.rescore!r}")

    @classmethod
    def preset(cls, name: str) -> StorageOptions:
        """A named preset (`PRESETS`); an unknown name is a one-line ConfigError listing them."""
        if name not in PRESETS:
            raise ConfigError(f"unknown storage preset {name!r}", f"use one of: {', '.join(PRESETS)}")
        return PRESETS[name]

    @property
    def quantized(self) -> bool:
        return any(v.quantization is not Quantization.none for v in self.vectors.values())

    def with_settings(self, text: str, what: str = "--storage-set") -> StorageOptions:
        """Apply `key=value,...` settings: `VECTOR.OPTION=value` for one named vector, `OPTION=value` for
        all three, or the collection-wide `oversampling` / `rescore`. OPTION is a `VectorStorage` field
        or `hnsw=on|off`. Unknown keys and bad values are one-line ConfigErrors."""
        vectors = {name: dataclasses.asdict(v) for name, v in self.vectors.items()}
        collection: dict[str, Any] = {"oversampling": self.oversampling, "rescore": self.rescore}
        for key, value in parse_pairs(text, what).items():
            if key in collection:
                collection[key] = _value(key, value)
                continue
            target, _, option = key.rpartition(".")
            if target and target not in VECTOR_NAMES or option not in _VECTOR_OPTIONS:
                raise ConfigError(f"unknown storage option {key!r}", _KNOWN_KEYS)
            for name in [target] if target else VECTOR_NAMES:
                _apply(vectors[name], option, value)
        built = StorageOptions({n: VectorStorage(**v) for n, v in vectors.items()}, name=self.name, **collection)
        if built != self and not self.name.endswith("+"):
            built = dataclasses.replace(built, name=f"{self.name}+")
        return built

    def describe(self) -> dict[str, str]:
        """`{"image": "...", "title": "...", "fused": "...", "search": "..."}` for `collections info`."""
        rows = {name: storage.describe() for name, storage in self.vectors.items()}
        if self.quantized:
            rows["search"] = (f"approximate: {'rescore' if self.rescore else 'no rescoring'} with "
                              f"oversampling {self.oversampling:g}; exact: original vectors")
        return rows


def parse_storage(preset: str | None, settings: str | None = None) -> StorageOptions:
    """The storage the user asked for: a preset (default `ram`) changed by `key=value` settings."""
    storage = StorageOptions.preset(preset or "ram")
    return storage.with_settings(settings) if settings else storage


_VECTOR_OPTIONS = {f.name for f in dataclasses.fields(VectorStorage)} | {"hnsw"}
_KNOWN_KEYS = (f"use [image|title|fused.]OPTION=VALUE with OPTION one of {', '.join(sorted(_VECTOR_OPTIONS))}, "
               "or oversampling=N, rescore=true|false")


def _value(option: str, text: str) -> Any:
    """The typed value of `option` from user text; the dataclasses validate ranges."""
    lowered = text.strip().lower()
    if option in ("on_disk", "always_ram", "rescore"):
        if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise ConfigError(f"storage option {option} must be true or false, got {text!r}")
        return lowered in ("true", "yes", "on", "1")
    if option in ("hnsw_m", "hnsw_ef_construct"):
        if lowered in ("none", "default"):
            return None
        try:
            return int(lowered)
        except ValueError:
            raise ConfigError(f"storage option {option} must be an integer, got {text!r}") from None
    if option in ("quantile", "oversampling"):
        if option == "quantile" and lowered in ("none", "default"):
            return None
        try:
            return float(lowered)
        except ValueError:
            raise ConfigError(f"storage option {option} must be a number, got {text!r}") from None
    return lowered  # datatype, quantization: checked against their enums


def _apply(options: dict[str, Any], option: str, text: str) -> None:
    """Set one option of a vector's `VectorStorage` fields; `hnsw=on|off` switches the graph, and
    leaving int8 quantization drops its quantile."""
    if option == "hnsw":
        lowered = text.strip().lower()
        if lowered not in ("on", "off"):
            raise ConfigError(f"storage option hnsw must be on or off, got {text!r}")
        options["hnsw_m"] = 0 if lowered == "off" else (None if options["hnsw_m"] == 0 else options["hnsw_m"])
        return
    options[option] = _value(option, text)
    if option == "quantization" and options[option] != Quantization.int8.value:
        options["quantile"] = None


def _choice(kind: type[StrEnum], value: Any, option: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"unknown storage {option} {value!r}",
                          f"use one of: {', '.join(m.value for m in kind)}") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _on_disk(quantization: Quantization, quantile: float | None, oversampling: float) -> StorageOptions:
    """Originals on disk, quantized copies in RAM, for every vector."""
    vector = VectorStorage(on_disk=True, quantization=quantization, quantile=quantile)
    return StorageOptions({v: vector for v in VECTOR_NAMES}, oversampling=oversampling,
                          name=f"{quantization.value}-disk")


PRESETS: dict[str, StorageOptions] = {
    "ram": StorageOptions(),
    "float16": StorageOptions({v: VectorStorage(datatype=Datatype.float16) for v in VECTOR_NAMES}, name="float16"),
    "int8-disk": _on_disk(Quantization.int8, quantile=0.99, oversampling=DEFAULT_OVERSAMPLING),
    "binary-disk": _on_disk(Quantization.binary, quantile=None, oversampling=6.0),
}
"""`ram`: float32 in RAM, HNSW on every vector (the default, 6 KiB per product at dim 512).
`float16`: half the RAM, scores within ~1e-4. `int8-disk`: originals on disk, int8 copies in RAM
(1.5 KiB per product), approximate searches rescored from disk. `binary-disk`: 1-bit copies (192 B per
product), oversampling 6."""
