"""Typed records of the vector store: what a collection remembers, what a point holds, what a search asks.

These records are backend-neutral; `gcl_vectordb.store.schema` is the one module that turns them into
the wire types of qdrant-edge-py (embedded) and qdrant-client (server) and back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gcl_vectordb import __version__
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights, FusionMethod, ModelIdentity, SearchMode
from gcl_vectordb.errors import ConfigError, ModelMismatch, PartialCollection, StoreError
from gcl_vectordb.store.bm25 import Bm25Settings, SparseVector
from gcl_vectordb.store.storage import VECTOR_NAMES, StorageOptions

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def validate_collection_name(name: str) -> str:
    """Collection names double as folder names: letters, digits, `_`, `.`, `-`; no path separators."""
    if not _NAME.match(name) or name.endswith("__gclvdb"):
        raise ConfigError(
            f"invalid collection name {name!r}",
            "use letters, digits, '_', '.', '-' (at most 128 characters, starting with a letter or digit)",
        )
    return name


@dataclass(frozen=True)
class IngestProgress:
    """How far the ingest that fills a collection got, saved with its record at every checkpoint.

    `corpora`: per corpus, (entries done, entries in the dataset's corpus) — the ingest's cursor, which
    counts entries stored or rejected in reading order; the size is None where it was not counted yet.
    `complete` once every corpus the ingest was asked for is read to its end.
    """

    complete: bool
    corpora: Mapping[int, tuple[int, int | None]] = field(default_factory=dict)
    updated_at: str = field(default_factory=utc_now_iso, compare=False)

    def describe(self) -> str:
        """`complete`, or `ingest incomplete (corpus 1: 300/600, corpus 2: 0/600)`."""
        if self.complete:
            return "complete"
        parts = ", ".join(f"corpus {c}: {done:,}/{'?' if total is None else f'{total:,}'}"
                          for c, (done, total) in sorted(self.corpora.items()))
        return f"ingest incomplete ({parts})" if parts else "ingest incomplete"

    def to_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "updated_at": self.updated_at,
                "corpora": {str(c): list(pair) for c, pair in sorted(self.corpora.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestProgress:
        try:
            corpora = {int(c): (int(done), None if total is None else int(total))
                       for c, (done, total) in dict(data.get("corpora", {})).items()}
            return cls(bool(data["complete"]), corpora, str(data.get("updated_at", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed ingest progress ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class CollectionRecord:
    """What built a collection, persisted with it so that queries use the same model.

    `identity` is the model's (weights hash, dim, preprocessing): every command that embeds for this
    collection must use that model (`require_model`); None in collections created before gcl-vdb recorded
    it. `progress` is the ingest's progress (None: recorded before gcl-vdb kept it). `field_weights` are
    the GCL field weights α_f the fused vector was built with; `weighted` searches default to them.
    `storage` is how the dense vectors are stored (datatype, RAM or disk, quantization, HNSW;
    `gcl_vectordb.store.storage`), applied when the collection is created and fixed from then on.
    `ingest` keeps ingest settings (batch size, fields, ...), `extra` anything else a caller wants
    remembered. `bm25`: the BM25 settings of the title's sparse vector; None for a collection made
    before keyword search (`require_bm25`).
    """

    name: str
    model_ref: str
    dim: int
    field_weights: FieldWeights = DEFAULT_FIELD_WEIGHTS
    dataset_root: str | None = None
    created_by: str = __version__
    created_at: str = field(default_factory=utc_now_iso)
    distance: str = "cosine"
    vectors: tuple[str, ...] = VECTOR_NAMES
    storage: StorageOptions = field(default_factory=StorageOptions)
    ingest: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    bm25: Bm25Settings | None = field(default_factory=Bm25Settings)
    identity: ModelIdentity | None = None
    progress: IngestProgress | None = None

    def __post_init__(self) -> None:
        validate_collection_name(self.name)
        if not isinstance(self.dim, int) or isinstance(self.dim, bool) or self.dim < 1:
            raise ConfigError(f"collection {self.name!r}: dim must be a positive integer, got {self.dim!r}")
        if self.distance != "cosine":
            raise ConfigError(f"collection {self.name!r}: only cosine distance is supported")
        object.__setattr__(self, "vectors", tuple(self.vectors))
        if self.vectors != VECTOR_NAMES:
            raise ConfigError(
                f"collection {self.name!r}: vectors must be {VECTOR_NAMES}, got {self.vectors}"
            )
        if not isinstance(self.field_weights, FieldWeights):
            raise TypeError(f"field_weights must be FieldWeights, got {type(self.field_weights).__name__}")
        if not isinstance(self.storage, StorageOptions):
            raise TypeError(f"storage must be StorageOptions, got {type(self.storage).__name__}")
        if self.bm25 is not None and not isinstance(self.bm25, Bm25Settings):
            raise TypeError(f"bm25 must be Bm25Settings or None, got {type(self.bm25).__name__}")
        if self.identity is not None and self.identity.dim != self.dim:
            raise ConfigError(f"collection {self.name!r}: its model embeds in {self.identity.dim} dimensions, "
                              f"not {self.dim}")

    def status(self) -> str:
        """What `collections info` shows: `complete`, `ingest incomplete (…)` or `unknown (…)`."""
        if self.progress is None:
            return "unknown (created before gcl-vdb recorded ingest progress)"
        return self.progress.describe()

    def require_bm25(self, mode: SearchMode | str) -> Bm25Settings:
        """The BM25 settings; a collection without the sparse vector is a StoreError naming the fix."""
        if self.bm25 is None:
            raise StoreError(
                f"collection {self.name!r} has no BM25 sparse vector, which the {mode} mode searches "
                "(it was made before gcl-vdb had keyword search)",
                f"add it with `gcl-vdb collections add-bm25 {self.name}` (reads the stored titles, no model "
                "needed), or ingest into a new collection",
            )
        return self.bm25


@dataclass(frozen=True)
class PointRecord:
    """One product as stored: its named vectors `(dim,)` float32 and its payload.

    A product may lack `image` or `title`; `fused` is always present when points are written
    (`retrieve(..., with_vectors=False)` returns records with no vectors). Cosine collections store
    vectors normalised to unit length, so retrieved vectors are the unit-length versions.
    The payload holds product_id, title, image, corpus (1 or 2) and any extra columns.
    """

    product_id: str
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.product_id, str) or not self.product_id:
            raise ConfigError(f"product_id must be a non-empty string, got {self.product_id!r}")
        unknown = sorted(set(self.vectors) - set(VECTOR_NAMES))
        if unknown:
            raise ConfigError(f"product {self.product_id}: unknown vector name(s) {unknown}")
        vectors = {}
        for name, vector in self.vectors.items():
            array = np.asarray(vector, dtype=np.float32)
            if array.ndim != 1:
                raise ConfigError(f"product {self.product_id}: vector {name} must be 1-d, got {array.shape}")
            vectors[name] = array
        object.__setattr__(self, "vectors", vectors)


@dataclass(frozen=True)
class PointColumns:
    """A batch of products as columns, how writes travel from `StoreBase` to a backend.

    `vectors[name]` `(n, dim)` float32, `present[name]` `(n,)` bool (a vector absent there is not
    written), one payload per product, and each title's BM25 vector (None: no sparse vectors; a None
    item: none for that product). Built by `upsert_arrays` after validation.
    """

    product_ids: Sequence[str]
    vectors: Mapping[str, np.ndarray]
    present: Mapping[str, np.ndarray]
    payloads: Sequence[Mapping[str, Any]]
    sparse: Sequence[SparseVector | None] | None = None

    def __len__(self) -> int:
        return len(self.product_ids)

    def batches(self, size: int) -> Iterator[PointColumns]:
        """Consecutive slices of at most `size` products (views, no copies)."""
        for start in range(0, len(self), size):
            stop = start + size
            yield PointColumns(
                self.product_ids[start:stop], {k: v[start:stop] for k, v in self.vectors.items()},
                {k: v[start:stop] for k, v in self.present.items()}, self.payloads[start:stop],
                self.sparse[start:stop] if self.sparse is not None else None,
            )


PAYLOAD_KEYS: tuple[str, ...] = ("product_id", "title", "image", "image_cell", "corpus")
"""The payload schema's own keys (`product_payload`); the collection's extra columns come on top."""


def product_payload(
    product_id: str, title: str | None, image: str | None, corpus: int, extra: Mapping[str, Any] | None = None,
    *, image_cell: str | None = None,
) -> dict[str, Any]:
    """The payload schema, defined once: extra columns, then product_id, title (None: the product has
    none), image (path relative to the collection's images folder, or None), corpus; `image_cell` only
    for an image embedded in a parquet file (`<file relative to the dataset root>#<row>`)."""
    if corpus not in (1, 2):
        raise ConfigError(f"product {product_id}: corpus must be 1 or 2, got {corpus!r}")
    payload = {**(extra or {}), "product_id": product_id, "title": title, "image": image, "corpus": corpus}
    if image_cell is not None:
        payload["image_cell"] = image_cell
    return payload


def check_filter_keys(record: CollectionRecord, keys: Iterable[str]) -> None:
    """Refuse a filter on a payload key no product has: the schema's keys and the extra columns the
    collection recorded at ingest (`ingest.extra_columns`; collections built before it was recorded are
    not checked). Raises ConfigError naming the known keys."""
    extra = record.ingest.get("extra_columns")
    if extra is None:
        return
    known = [*PAYLOAD_KEYS, *extra]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ConfigError(f"collection {record.name!r} has no payload key {', '.join(map(repr, unknown))}",
                          f"filter on one of: {', '.join(known)}")


@dataclass(frozen=True)
class SearchRequest:
    """One query against a collection.

    `vector` is the query embedding `(dim,)` (a text embedding for text search; None for `bm25`),
    `text` the query's words (the `bm25` and `hybrid` modes embed it with the collection's BM25). Modes:
    `fused` / `image` / `title`: nearest neighbours on that named vector (cosine).
    `rrf`: top-N on image and on title (N = max(limit·RRF_DEPTH_FACTOR, RRF_MIN_DEPTH)), fused by
    reciprocal rank: score = Σ_f 1 / (rrf_k + r_f − 1) with r_f the 1-based rank in field f (Qdrant's).
    `weighted`: score = Σ_f w_f · cos(q, e_f) over image/title, a missing field counting 0; `weights`
    defaults to the collection's field weights. `bm25`: keyword search on the title's sparse vector,
    with the IDF taken over the searched corpus (`corpus`, else the whole collection). `hybrid`: top-N
    on `fused` and top-N by BM25 (N as for `rrf`), fused in the engine by `fusion` (RRF with `rrf_k`,
    or DBSF). `exact=True` makes every dense ranking the exact top-k (BM25 always is).
    `corpus` filters corpus == N; `filters` adds exact-match payload conditions.
    On a collection with quantized vectors, approximate searches score the quantized copies, then
    `rescore` the best `oversampling` × limit with the original vectors (None: the collection's
    defaults, `StorageOptions`); exact searches read the original vectors only.
    """

    vector: np.ndarray | None
    mode: SearchMode = SearchMode.fused
    limit: int = 10
    corpus: int | None = None
    filters: Mapping[str, str | int] = field(default_factory=dict)
    exact: bool = False
    weights: FieldWeights | None = None
    rrf_k: int = 60
    with_payload: bool = True
    hnsw_ef: int | None = None
    text: str | None = None
    fusion: FusionMethod = FusionMethod.rrf
    oversampling: float | None = None
    rescore: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SearchMode.parse(self.mode))
        object.__setattr__(self, "fusion", FusionMethod.parse(self.fusion))
        if self.vector is not None:
            vector = np.ascontiguousarray(self.vector, dtype=np.float32)
            if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
                raise ConfigError(f"query vector must be a finite 1-d array, got shape {vector.shape}")
            object.__setattr__(self, "vector", vector)
        elif self.mode.dense:
            raise ConfigError(f"the {self.mode} mode needs a query vector")
        if self.mode.lexical and not isinstance(self.text, str):
            raise ConfigError(f"the {self.mode} mode needs the query text")
        _require_positive("limit", self.limit)
        _require_positive("rrf_k", self.rrf_k)
        if self.hnsw_ef is not None:
            _require_positive("hnsw_ef", self.hnsw_ef)
        if self.oversampling is not None and (isinstance(self.oversampling, bool) or not isinstance(
                self.oversampling, (int, float)) or not 1.0 <= self.oversampling <= 100.0):
            raise ConfigError(f"oversampling must be a number in [1, 100], got {self.oversampling!r}")
        if self.rescore is not None and not isinstance(self.rescore, bool):
            raise ConfigError(f"rescore must be true or false, got {self.rescore!r}")
        if self.corpus is not None and not isinstance(self.corpus, int):
            raise ConfigError(f"corpus must be an integer, got {self.corpus!r}")
        for key, value in self.filters.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ConfigError(f"filter {key!r}={value!r}: keys are strings, values strings or integers")
        if self.weights is not None and not isinstance(self.weights, FieldWeights):
            raise TypeError(f"weights must be FieldWeights, got {type(self.weights).__name__}")

    def resolved_weights(self, record: CollectionRecord) -> FieldWeights:
        """The weights of a `weighted` search: the request's, else the collection's field weights."""
        return self.weights if self.weights is not None else record.field_weights


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Hit:
    """One search result; `payload` is None when the request asked for none."""

    product_id: str
    score: float
    payload: Mapping[str, Any] | None = None


def require_model(record: CollectionRecord, identity: ModelIdentity) -> None:
    """Refuse to embed queries or products for `record` with any model but the one that built it.

    Raises ModelMismatch naming both models. A collection created before gcl-vdb recorded model identities
    only knows its model's reference and dim: the model must then come from that same reference (which is
    what `query` and `evaluate` load); anything else is refused, since equal dims prove nothing.
    """
    if record.identity is not None:
        record.identity.require_same(identity, record.name)
        return
    if identity.dim != record.dim:
        raise ModelMismatch(
            f"model {identity.short()} embeds in {identity.dim} dimensions but collection {record.name!r} holds "
            f"{record.dim}-dim vectors built by {record.model_ref}",
            f"use {record.model_ref} (or leave --model out to use the collection's own model), "
            "or ingest into a new collection with this model",
        )
    if identity.model_ref != record.model_ref:
        raise ModelMismatch(
            f"collection {record.name!r} records no model identity (it was created before gcl-vdb recorded "
            f"one) and was built by {record.model_ref}, not {identity.model_ref}",
            f"use {record.model_ref}, or re-ingest into a new collection with this model",
        )
    log.warning("collection %r records no model identity (created before gcl-vdb recorded one); trusting "
                "that %s still holds the model that built it", record.name, record.model_ref)


def require_complete(record: CollectionRecord, *, allow_partial: bool = False) -> str | None:
    """Refuse a collection whose ingest has not completed (results over it would be silently partial).

    With `allow_partial` returns the warning to show and record instead; None for a complete collection.
    """
    if record.progress is not None and record.progress.complete:
        return None
    status = record.status()
    if allow_partial:
        return f"collection {record.name!r} is not completely ingested: {status}; results cover only what it holds"
    hint = ("run the same `gcl-vdb ingest` again to finish it (it resumes; on a finished collection it only "
            "records that), or pass --allow-partial to use it anyway")
    raise PartialCollection(f"collection {record.name!r} is not completely ingested: {status}", hint)
