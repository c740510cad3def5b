"""The one place where store records meet the wire: qdrant-edge-py (embedded) and qdrant-client (server).

Point ids, the collection record's JSON form, points, filters, query plans and results are converted
here for both backends, and nowhere else. qdrant-client is imported lazily (≈ 0.75 s), so that the
embedded path and the CLI start fast.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from enum import Enum
from types import ModuleType
from typing import Any

import numpy as np
import qdrant_edge as edge

from gcl_vectordb.domain import FieldWeights, ModelIdentity
from gcl_vectordb.errors import ConfigError, StoreError
from gcl_vectordb.store.bm25 import SPARSE_VECTOR, Bm25Settings, SparseVector
from gcl_vectordb.store.plans import (
    DbsfFusion,
    Nearest,
    QuantizedSearch,
    QueryPlan,
    RrfFusion,
    SparseNearest,
    WeightedSum,
)
from gcl_vectordb.store.records import (
    VECTOR_NAMES,
    CollectionRecord,
    Hit,
    IngestProgress,
    PointColumns,
    PointRecord,
)
from gcl_vectordb.store.storage import Datatype, Quantization, StorageOptions, VectorStorage

PRODUCT_NAMESPACE = uuid.UUID("6f1c2a0e-5b7d-5c43-9e0a-3d4b8f2e7a91")
"""UUID5 namespace of point ids. Fixed forever: changing it would orphan every stored point."""
_NAMESPACE_BYTES = PRODUCT_NAMESPACE.bytes
RECORD_FORMAT = 1
RECORD_METADATA_KEY = "gcl_vdb"
"""Key of the collection record inside a server collection's metadata."""


def point_id(product_id: str) -> str:
    """The Qdrant point id of a product: UUID5(PRODUCT_NAMESPACE, product_id), as a string.

    `uuid.uuid5` spelled out (RFC 4122: SHA-1 of namespace + name, version 5, variant 10): 4× faster than
    building a `UUID` object, which counts at millions of points; tests/test_store_schema.py checks both
    agree."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + product_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# ---------------------------------------------------------------- collection record (JSON)


def record_to_json(record: CollectionRecord) -> dict[str, Any]:
    """A JSON-ready dict of the record, with a format number for future migrations."""
    data = asdict(record)
    data["vectors"] = list(record.vectors)
    data["field_weights"] = record.field_weights.as_dict()
    data["storage"] = storage_to_json(record.storage)
    data["identity"] = record.identity.to_dict() if record.identity is not None else None
    data["progress"] = record.progress.to_dict() if record.progress is not None else None
    return {"format": RECORD_FORMAT, **data}


def storage_to_json(storage: StorageOptions) -> dict[str, Any]:
    """`{"name", "oversampling", "rescore", "vectors": {name: VectorStorage fields}}`, enums as strings."""
    vectors = {name: {key: value.value if isinstance(value, Enum) else value for key, value in asdict(v).items()}
               for name, v in storage.vectors.items()}
    return {"name": storage.name, "oversampling": storage.oversampling, "rescore": storage.rescore,
            "vectors": vectors}


def storage_from_json(data: Mapping[str, Any]) -> StorageOptions:
    """The inverse of `storage_to_json`; a record without `storage` (before storage options) is `ram`."""
    vectors = {name: VectorStorage(**fields) for name, fields in data["vectors"].items()}
    return StorageOptions(vectors, oversampling=data["oversampling"], rescore=data["rescore"], name=data["name"])


def record_from_json(data: Mapping[str, Any], where: str) -> CollectionRecord:
    """Rebuild a record; unknown keys (from a newer gcl-vdb) are kept under `extra`. A record without
    `bm25` (made before keyword search) has no sparse vector: `bm25` is None; one whose model identity
    sits in `extra["model_identity"]` (builds of the embedding-shards work before the typed field) gets it
    as `identity`."""
    known = {f.name for f in fields(CollectionRecord)}
    values = {k: v for k, v in data.items() if k in known}
    newer = {k: v for k, v in data.items() if k not in known and k != "format"}
    if newer:
        values["extra"] = {**values.get("extra", {}), **newer}
    try:
        values["vectors"] = tuple(values.get("vectors", VECTOR_NAMES))
        if "field_weights" in values:
            values["field_weights"] = FieldWeights.from_mapping(values["field_weights"])
        if "storage" in values:
            values["storage"] = storage_from_json(values["storage"])
        bm25 = values.get("bm25")
        values["bm25"] = Bm25Settings.from_dict(bm25) if bm25 is not None else None
        legacy = values.get("extra", {}).get("model_identity")  # where early 10M-path builds kept it
        if values.get("identity") is None and legacy is not None:
            values["identity"] = legacy
            values["extra"] = {k: v for k, v in values["extra"].items() if k != "model_identity"}
        if values.get("identity") is not None:
            values["identity"] = ModelIdentity.from_dict(values["identity"])
        if values.get("progress") is not None:
            values["progress"] = IngestProgress.from_dict(values["progress"])
        return CollectionRecord(**values)
    except (TypeError, ValueError, KeyError, AttributeError, ConfigError) as exc:
        raise StoreError(f"the collection record in {where} is unreadable: {exc}",
                         "drop the collection and ingest it again") from exc


# ---------------------------------------------------------------- points


WireRow = tuple[str, dict[str, list[float] | SparseVector], dict[str, Any]]
"""(point id, {name: dense vector as a list, or the `bm25` SparseVector}, payload)."""


def wire_rows(batch: PointColumns) -> Iterator[WireRow]:
    """One WireRow per product; a vector absent in `present` (or a None `sparse[i]`) is left out.

    One `tolist()` per array is the fast path (≈ 3× faster than per-row conversion).
    """
    lists = {name: np.asarray(array, dtype=np.float32).tolist() for name, array in batch.vectors.items()}
    masks = {name: np.asarray(batch.present[name], dtype=bool).tolist() for name in batch.vectors}
    for i, product_id in enumerate(batch.product_ids):
        named: dict[str, list[float] | SparseVector] = {
            name: rows[i] for name, rows in lists.items() if masks[name][i]}
        if batch.sparse is not None and batch.sparse[i] is not None:
            named[SPARSE_VECTOR] = batch.sparse[i]
        yield point_id(product_id), named, {**batch.payloads[i], "product_id": product_id}


def _edge_vector(vector: list[float] | SparseVector) -> Any:
    return edge.SparseVector(list(vector.indices), list(vector.values)) if isinstance(vector, SparseVector) \
        else vector


def _client_vector(vector: list[float] | SparseVector) -> Any:
    if isinstance(vector, SparseVector):
        return client_models().SparseVector.model_construct(indices=list(vector.indices), values=list(vector.values))
    return vector


def edge_points(rows: Iterator[WireRow]) -> list[edge.Point]:
    return [edge.Point(pid, {k: _edge_vector(v) for k, v in named.items()}, payload) for pid, named, payload in rows]


def client_points(rows: Iterator[WireRow]) -> list[Any]:
    models = client_models()
    # model_construct skips pydantic validation: the rows are already well-typed.
    return [models.PointStruct.model_construct(id=pid, vector={k: _client_vector(v) for k, v in named.items()},
                                               payload=payload)
            for pid, named, payload in rows]


def edge_sparse_updates(updates: Sequence[tuple[str, SparseVector]]) -> edge.UpdateOperation:
    """Set the `bm25` vector of existing points: (point id, vector) pairs."""
    return edge.UpdateOperation.update_vectors(
        [edge.PointVectors(pid, {SPARSE_VECTOR: _edge_vector(vector)}) for pid, vector in updates])


def client_sparse_updates(updates: Sequence[tuple[str, SparseVector]]) -> list[Any]:
    models = client_models()
    return [models.PointVectors(id=pid, vector={SPARSE_VECTOR: _client_vector(vector)}) for pid, vector in updates]


def grpc_upsert(collection: str, batch: PointColumns) -> Any:
    """The batch as one `UpsertPoints` request (wait=true) of Qdrant's gRPC Points service.

    Each dense vector is parsed from its wire form instead of converted from Python floats: a packed
    `repeated float` is its field key, the byte length as a varint and the little-endian float32 values,
    so `key + length + row.tobytes()` is a `DenseVector` already (benchmarks/server_load.py measures
    what this saves against REST JSON).
    """
    grpc = client_grpc()
    from qdrant_client.conversions.conversion import RestToGrpc

    request = grpc.UpsertPoints(collection_name=collection, wait=True)
    arrays = {name: np.ascontiguousarray(array, dtype="<f4") for name, array in batch.vectors.items()}
    masks = {name: np.asarray(batch.present[name], dtype=bool).tolist() for name in arrays}
    headers = {name: _packed_floats_header(array.shape[1]) for name, array in arrays.items()}
    for i, product_id in enumerate(batch.product_ids):
        point = request.points.add(
            id=grpc.PointId(uuid=point_id(product_id)),
            payload=RestToGrpc.convert_payload({**batch.payloads[i], "product_id": product_id}),
        )
        named = point.vectors.vectors.vectors
        for name, array in arrays.items():
            if masks[name][i]:
                named[name].dense.MergeFromString(headers[name] + array[i].tobytes())
        if batch.sparse is not None and batch.sparse[i] is not None:
            sparse = named[SPARSE_VECTOR].sparse
            sparse.indices.extend(batch.sparse[i].indices)
            sparse.values.extend(batch.sparse[i].values)
    return request


def _packed_floats_header(dim: int) -> bytes:
    """Field 1, wire type 2 (length-delimited), then the length of `dim` floats as a varint."""
    length, varint = dim * 4, bytearray()
    while length >= 0x80:
        varint.append(length & 0x7F | 0x80)
        length >>= 7
    varint.append(length)
    return b"\x0a" + bytes(varint)


def point_from_wire(record: Any) -> PointRecord:
    """A qdrant-edge `Record` or qdrant-client `Record` as a PointRecord (dense vectors float32 `(dim,)`;
    the sparse `bm25` vector, derived from the title, is not part of a PointRecord)."""
    payload = dict(record.payload or {})
    vectors = record.vector if isinstance(record.vector, dict) else {}
    return PointRecord(
        product_id=str(payload.get("product_id")),
        vectors={name: np.asarray(v, dtype=np.float32) for name, v in vectors.items() if name != SPARSE_VECTOR},
        payload=payload,
    )


def hits_from_wire(points: Sequence[Any], with_payload: bool) -> list[Hit]:
    """Scored points of either backend as Hits; the product id comes from the payload."""
    hits = []
    for point in points:
        payload = dict(point.payload or {})
        hits.append(Hit(str(payload.get("product_id")), float(point.score), payload if with_payload else None))
    return hits


# ---------------------------------------------------------------- embedded (qdrant-edge-py)


ENGINE_HNSW = {"m": 16, "ef_construct": 100, "full_scan_threshold_kb": 10_000}
"""Qdrant's defaults, filled in where a per-vector HNSW config sets only some values."""


def edge_config(
    dim: int, storage: StorageOptions, hnsw: Mapping[str, int] | None, indexing_threshold_kb: int | None,
    bm25: bool = True,
) -> edge.EdgeConfig:
    """Three cosine named vectors of `dim` stored as `storage` says and, with `bm25`, the sparse `bm25`
    vector with the IDF modifier; the shard-wide HNSW settings and indexing threshold (the embedded
    store's options) only where given."""
    engine_hnsw = {**ENGINE_HNSW, **(hnsw or {})}
    hnsw_config = _edge_hnsw(engine_hnsw) if hnsw else None
    optimizers = None
    if indexing_threshold_kb is not None:
        optimizers = edge.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb)
    return edge.EdgeConfig(
        vectors={name: _edge_vector_params(dim, vector, engine_hnsw) for name, vector in storage.vectors.items()},
        sparse_vectors={SPARSE_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)} if bm25 else None,
        hnsw_config=hnsw_config, optimizers=optimizers,
    )


def _edge_hnsw(values: Mapping[str, int]) -> edge.HnswIndexConfig:
    return edge.HnswIndexConfig(m=values["m"], ef_construct=values["ef_construct"],
                                full_scan_threshold=values["full_scan_threshold_kb"])


def _edge_vector_params(dim: int, vector: VectorStorage, engine_hnsw: Mapping[str, int]) -> edge.EdgeVectorParams:
    quantized_memory = edge.Memory.Pinned if vector.always_ram else edge.Memory.Cold
    quantization = None
    if vector.quantization is Quantization.int8:
        quantization = edge.ScalarQuantizationConfig(edge.ScalarType.Int8, quantile=vector.quantile,
                                                     memory=quantized_memory)
    elif vector.quantization is Quantization.binary:
        quantization = edge.BinaryQuantizationConfig(memory=quantized_memory)
    hnsw = None
    if vector.hnsw_m is not None or vector.hnsw_ef_construct is not None:
        own = {"m": vector.hnsw_m, "ef_construct": vector.hnsw_ef_construct}
        hnsw = _edge_hnsw({**engine_hnsw, **{k: v for k, v in own.items() if v is not None}})
    return edge.EdgeVectorParams(
        size=dim, distance=edge.Distance.Cosine, memory=edge.Memory.Cold if vector.on_disk else None,
        datatype=edge.VectorStorageDatatype.Float16 if vector.datatype is Datatype.float16 else None,
        quantization_config=quantization, hnsw_config=hnsw,
    )


def edge_create_sparse_vector() -> edge.UpdateOperation:
    """Add the `bm25` sparse vector (IDF modifier) to an existing shard; a no-op where it exists."""
    return edge.UpdateOperation.create_sparse_vector(SPARSE_VECTOR, modifier=edge.Modifier.Idf)


def edge_payload_indexes() -> list[edge.UpdateOperation]:
    return [
        edge.UpdateOperation.create_field_index("corpus", edge.PayloadSchemaType.Integer),
        edge.UpdateOperation.create_field_index("product_id", edge.PayloadSchemaType.Keyword),
    ]


def edge_filter(conditions: Sequence[tuple[str, str | int]]) -> edge.Filter | None:
    if not conditions:
        return None
    return edge.Filter(must=[edge.FieldCondition(k, match=edge.MatchValue(v)) for k, v in conditions])


def _edge_scoring(plan: QueryPlan) -> Any:
    query = plan.query
    if isinstance(query, Nearest):
        return edge.Query.Nearest(query.vector.tolist(), using=query.using)
    if isinstance(query, SparseNearest):
        return edge.Query.Nearest(_edge_vector(query.vector), using=query.using)
    if isinstance(query, RrfFusion):
        return edge.Fusion.Rrf(k=query.k)
    if isinstance(query, DbsfFusion):
        return edge.Fusion.Dbsf()
    terms = [
        edge.Expression.Mult([edge.Expression.Constant(w), edge.Expression.Variable(f"$score[{i}]")])
        for i, w in enumerate(query.weights)
    ]
    defaults = {f"$score[{i}]": 0.0 for i in range(len(query.weights))}
    return edge.Formula(edge.Expression.Sum(terms), defaults=defaults)


def _idf_corpus(plan: QueryPlan) -> tuple[tuple[str, str | int], ...] | None:
    return (plan.query.idf_corpus or None) if isinstance(plan.query, SparseNearest) else None


def _edge_params(plan: QueryPlan) -> edge.SearchParams | None:
    idf_corpus = _idf_corpus(plan)
    if not plan.exact and plan.hnsw_ef is None and idf_corpus is None and plan.quantization is None:
        return None
    idf = edge.IdfParams(corpus=edge_filter(idf_corpus)) if idf_corpus is not None else None
    return edge.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, idf=idf,
                             quantization=_edge_quantized(plan.quantization))


def _edge_quantized(quantized: QuantizedSearch | None) -> edge.QuantizationSearchParams | None:
    if quantized is None:
        return None
    if quantized.ignore:
        return edge.QuantizationSearchParams(ignore=True)
    return edge.QuantizationSearchParams(rescore=quantized.rescore, oversampling=quantized.oversampling)


def _edge_prefetch(plan: QueryPlan) -> edge.Prefetch:
    return edge.Prefetch(
        plan.limit, query=_edge_scoring(plan), prefetches=[_edge_prefetch(p) for p in plan.prefetch] or None,
        params=_edge_params(plan), filter=edge_filter(plan.conditions),
    )


def edge_request(plan: QueryPlan) -> edge.QueryRequest:
    payload = plan.with_payload
    return edge.QueryRequest(
        plan.limit, query=_edge_scoring(plan),
        prefetches=[_edge_prefetch(p) for p in plan.prefetch] or None,
        filter=edge_filter(plan.conditions), params=_edge_params(plan), with_vector=False,
        with_payload=edge.PayloadSelector.Include(list(payload)) if isinstance(payload, tuple) else payload,
    )


# ---------------------------------------------------------------- server (qdrant-client)


def client_models() -> ModuleType:
    from qdrant_client.http import models

    return models


def client_grpc() -> ModuleType:
    """qdrant-client's generated gRPC messages and stubs (`qdrant_client.grpc`)."""
    from qdrant_client import grpc

    return grpc


def client_vectors_config(dim: int, storage: StorageOptions) -> dict[str, Any]:
    """Three cosine named vectors of `dim` stored as `storage` says. `on_disk` and `always_ram` rather
    than the newer `memory`: every server release the client supports knows them."""
    models = client_models()
    return {name: _client_vector_params(models, dim, vector) for name, vector in storage.vectors.items()}


def _client_vector_params(models: ModuleType, dim: int, vector: VectorStorage) -> Any:
    quantization = None
    if vector.quantization is Quantization.int8:
        quantization = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=vector.quantile, always_ram=vector.always_ram))
    elif vector.quantization is Quantization.binary:
        quantization = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=vector.always_ram))
    hnsw = None
    if vector.hnsw_m is not None or vector.hnsw_ef_construct is not None:
        hnsw = models.HnswConfigDiff(m=vector.hnsw_m, ef_construct=vector.hnsw_ef_construct)
    return models.VectorParams(
        size=dim, distance=models.Distance.COSINE, on_disk=vector.on_disk or None,
        datatype=models.Datatype.FLOAT16 if vector.datatype is Datatype.float16 else None,
        quantization_config=quantization, hnsw_config=hnsw,
    )


def client_sparse_vectors_config(bm25: bool = True) -> dict[str, Any] | None:
    """The sparse `bm25` vector with the IDF modifier (Qdrant ≥ 1.19 for the per-corpus IDF of searches)."""
    models = client_models()
    return {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)} if bm25 else None


def client_sparse_vector_name_config() -> Any:
    """The `bm25` vector added to an existing collection (Qdrant ≥ 1.18)."""
    models = client_models()
    return models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF))


def client_payload_indexes() -> list[tuple[str, Any]]:
    models = client_models()
    return [("corpus", models.PayloadSchemaType.INTEGER), ("product_id", models.PayloadSchemaType.KEYWORD)]


def client_filter(conditions: Sequence[tuple[str, str | int]]) -> Any:
    if not conditions:
        return None
    models = client_models()
    return models.Filter(
        must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in conditions]
    )


def _client_scoring(plan: QueryPlan) -> tuple[Any, str | None]:
    models = client_models()
    query = plan.query
    if isinstance(query, Nearest):
        return models.NearestQuery(nearest=query.vector.tolist()), query.using
    if isinstance(query, SparseNearest):
        return models.NearestQuery(nearest=_client_vector(query.vector)), query.using
    if isinstance(query, RrfFusion):
        return models.RrfQuery(rrf=models.Rrf(k=query.k)), None
    if isinstance(query, DbsfFusion):
        return models.FusionQuery(fusion=models.Fusion.DBSF), None
    assert isinstance(query, WeightedSum)
    terms = [models.MultExpression(mult=[w, f"$score[{i}]"]) for i, w in enumerate(query.weights)]
    defaults = {f"$score[{i}]": 0.0 for i in range(len(query.weights))}
    return models.FormulaQuery(formula=models.SumExpression(sum=terms), defaults=defaults), None


def _client_params(plan: QueryPlan, with_params: bool) -> Any:
    """Search params; without `with_params` (local mode, always exact) only the IDF corpus."""
    models = client_models()
    idf_corpus = _idf_corpus(plan)
    idf = models.IdfCorpusParams(corpus=client_filter(idf_corpus)) if idf_corpus is not None else None
    if not with_params:
        return models.SearchParams(idf=idf) if idf is not None else None
    if not plan.exact and plan.hnsw_ef is None and idf is None and plan.quantization is None:
        return None
    quantized, quantization = plan.quantization, None
    if quantized is not None:
        quantization = (models.QuantizationSearchParams(ignore=True) if quantized.ignore else
                        models.QuantizationSearchParams(rescore=quantized.rescore,
                                                        oversampling=quantized.oversampling))
    return models.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, idf=idf, quantization=quantization)


def _client_prefetch(plan: QueryPlan, with_params: bool) -> Any:
    query, using = _client_scoring(plan)
    return client_models().Prefetch(
        query=query, using=using, limit=plan.limit, filter=client_filter(plan.conditions),
        params=_client_params(plan, with_params),
        prefetch=[_client_prefetch(p, with_params) for p in plan.prefetch] or None,
    )


def client_request(plan: QueryPlan, with_params: bool = True) -> Any:
    """A qdrant-client QueryRequest. `with_params=False` for local mode, which is always exact."""
    models = client_models()
    query, using = _client_scoring(plan)
    payload = plan.with_payload
    return models.QueryRequest(
        query=query, using=using, limit=plan.limit, filter=client_filter(plan.conditions),
        params=_client_params(plan, with_params),
        prefetch=[_client_prefetch(p, with_params) for p in plan.prefetch] or None,
        with_vector=False,
        with_payload=models.PayloadSelectorInclude(include=list(payload)) if isinstance(payload, tuple)
        else payload,
    )
