"""Wire conversions (schema.py), record validation and the weighted-search certificate (plans.py)."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from gcl_vectordb.domain import FieldWeights, ModelIdentity, Preprocessing
from gcl_vectordb.errors import ConfigError, StoreError
from gcl_vectordb.store import (
    CollectionRecord,
    Hit,
    PointRecord,
    SearchRequest,
    plans,
    point_id,
    product_payload,
    schema,
)
from gcl_vectordb.store.bm25 import Bm25Settings, bm25_document_vectors, bm25_query_vector
from gcl_vectordb.store.records import PointColumns


def test_point_id_is_a_stable_uuid5() -> None:
    # Pinned: a change would re-key every stored collection and break resumable ingest.
    assert point_id("B07XYZ") == "5801891f-5b01-5195-bcd5-78c971f994f7"
    assert uuid.UUID(point_id("42")).version == 5
    assert point_id("42") == str(uuid.uuid5(schema.PRODUCT_NAMESPACE, "42")) != point_id("43")
    rng = random.Random(5)  # the spelled-out UUID5 against the standard library's, on all kinds of ids
    ids = ["", "ü ✓ 商品", "x" * 500, *("".join(rng.choice("aZ09-_ é") for _ in range(rng.randint(1, 40)))
                                        for _ in range(2000))]
    assert [point_id(p) for p in ids] == [str(uuid.uuid5(schema.PRODUCT_NAMESPACE, p)) for p in ids]


def test_collection_record_json_round_trip() -> None:
    record = CollectionRecord(
        "gs10m", model_ref="runs/gcl/model", dim=512, field_weights=FieldWeights(image=0.4, title=0.6),
        dataset_root="/data/marqo-gs", ingest={"batch_size": 256, "fields": ["title", "image"]},
        extra={"note": "ünïcode"},
    )
    text = json.dumps(schema.record_to_json(record))
    assert json.loads(text)["format"] == schema.RECORD_FORMAT
    assert schema.record_from_json(json.loads(text), "test") == record


def test_record_from_a_newer_version_keeps_unknown_keys_and_bad_records_fail_clearly() -> None:
    data = schema.record_to_json(CollectionRecord("c", model_ref="m", dim=4))
    data["future_field"] = {"x": 1}
    assert schema.record_from_json(data, "test").extra == {"future_field": {"x": 1}}
    with pytest.raises(StoreError, match="unreadable.*drop the collection"):
        schema.record_from_json({"name": "c", "model_ref": "m", "dim": "four"}, "store/c/collection.json")


@pytest.mark.parametrize("bad", [dict(name="a/b"), dict(name=""), dict(dim=0), dict(distance="dot"),
                                 dict(vectors=("fused",))])
def test_collection_record_validation(bad: dict) -> None:
    values = dict(name="ok", model_ref="m", dim=4) | bad
    with pytest.raises(ConfigError):
        CollectionRecord(**values)


def _two_products() -> PointColumns:
    vectors = {"fused": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "image": np.ones((2, 3), np.float32)}
    present = {"fused": np.array([True, True]), "image": np.array([False, True])}
    return PointColumns(["a", "b"], vectors, present, [{"title": "x"}, {"product_id": "stale", "corpus": 2}])


def _with_sparse(batch: PointColumns) -> PointColumns:
    """The batch with BM25 vectors: a title for the first product, none for the second."""
    (first,) = bm25_document_vectors(["red leather shoes"], Bm25Settings())
    return replace(batch, sparse=[first, None])


def test_wire_rows_leave_out_absent_vectors_and_set_product_id() -> None:
    batch = _two_products()
    rows = list(schema.wire_rows(batch))
    assert [r[0] for r in rows] == [point_id("a"), point_id("b")]
    assert set(rows[0][1]) == {"fused"} and set(rows[1][1]) == {"fused", "image"}
    assert rows[0][1]["fused"] == [np.float32(v) for v in batch.vectors["fused"][0]]
    assert rows[0][2] == {"title": "x", "product_id": "a"} and rows[1][2]["product_id"] == "b"
    edge_point = schema.edge_points(iter(rows))[1]
    client_point = schema.client_points(iter(rows))[1]
    assert str(edge_point.id) == str(client_point.id) == point_id("b")
    assert edge_point.payload == client_point.payload == {"product_id": "b", "corpus": 2}


def test_grpc_upsert_carries_the_same_points_as_rest() -> None:
    """The protobuf request, serialised and parsed back by qdrant-client's own converter, holds exactly the
    points the REST path sends (vectors bit for bit, ids, payloads, absent vectors left out)."""
    from qdrant_client import grpc
    from qdrant_client.conversions.conversion import GrpcToRest

    batch = _with_sparse(_two_products())
    request = grpc.UpsertPoints.FromString(schema.grpc_upsert("products", batch).SerializeToString())
    assert request.collection_name == "products" and request.wait
    decoded = [GrpcToRest.convert_point_struct(p) for p in request.points]
    rest = schema.client_points(schema.wire_rows(batch))
    assert [str(p.id) for p in decoded] == [str(p.id) for p in rest]
    assert [p.payload for p in decoded] == [p.payload for p in rest]
    assert [p.vector for p in decoded] == [p.vector for p in rest]
    assert set(decoded[0].vector) == {"fused", "bm25"} and set(decoded[1].vector) == {"fused", "image"}


@pytest.mark.parametrize("dim", [1, 31, 32, 512, 4096, 40_000])
def test_grpc_vectors_round_trip_at_every_varint_length(dim: int) -> None:
    rng = np.random.default_rng(dim)
    fused = rng.normal(size=(3, dim)).astype(np.float32)
    batch = PointColumns(["x", "y", "z"], {"fused": fused}, {"fused": np.ones(3, bool)}, [{}, {}, {}])
    request = type(schema.grpc_upsert("c", batch)).FromString(schema.grpc_upsert("c", batch).SerializeToString())
    for i, point in enumerate(request.points):
        np.testing.assert_array_equal(np.array(point.vectors.vectors.vectors["fused"].dense.data, np.float32),
                                      fused[i])


def test_point_and_hit_from_wire() -> None:
    wire = SimpleNamespace(id=uuid.UUID(point_id("p")), payload={"product_id": "p", "corpus": 2},
                           vector={"fused": [0.6, 0.8]}, score=0.5)
    record = schema.point_from_wire(wire)
    assert record.product_id == "p" and record.payload["corpus"] == 2
    assert record.vectors["fused"].dtype == np.float32
    np.testing.assert_array_equal(record.vectors["fused"], np.array([0.6, 0.8], np.float32))
    assert schema.hits_from_wire([wire], with_payload=True) == [Hit("p", 0.5, {"product_id": "p", "corpus": 2})]
    assert schema.hits_from_wire([wire], with_payload=False) == [Hit("p", 0.5, None)]


def test_point_record_and_payload_validation() -> None:
    with pytest.raises(ConfigError, match="unknown vector"):
        PointRecord("p", {"colour": np.ones(3)})
    with pytest.raises(ConfigError, match="1-d"):
        PointRecord("p", {"fused": np.ones((2, 3))})
    with pytest.raises(ConfigError, match="corpus must be 1 or 2"):
        product_payload("p", "t", None, 3)
    assert product_payload("p", "t", "i.jpg", 1, {"brand": "x", "corpus": 9})["corpus"] == 1


@pytest.mark.parametrize("bad", [dict(mode="nearest"), dict(limit=0), dict(vector=np.ones((2, 2))),
                                 dict(vector=np.array([np.nan, 1.0])),
                                 dict(filters={"in_stock": True}), dict(hnsw_ef=0), dict(rrf_k=0),
                                 dict(mode="bm25"), dict(mode="hybrid", vector=None, text="red"), dict(mode="hybrid"),
                                 dict(vector=None, text="red"), dict(mode="hybrid", text="red", fusion="max")])
def test_search_request_validation(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SearchRequest(**(dict(vector=np.ones(4)) | bad))


def test_search_request_takes_field_weights_not_a_dict() -> None:
    with pytest.raises(TypeError, match="weights must be FieldWeights"):
        SearchRequest(np.ones(4), mode="weighted", weights={"image": 1.0})  # type: ignore[arg-type]


def test_search_request_weights_default_to_the_collection_field_weights() -> None:
    record = CollectionRecord("c", model_ref="m", dim=4, field_weights=FieldWeights(image=0.3, title=0.7))
    assert SearchRequest(np.ones(4), mode="weighted").resolved_weights(record) == FieldWeights(image=0.3, title=0.7)
    request = SearchRequest(np.ones(4), mode="weighted", weights=FieldWeights(image=0.0, title=1.0))
    assert request.resolved_weights(record) == FieldWeights(image=0.0, title=1.0)


def test_client_request_of_each_mode() -> None:
    q = np.array([1.0, 0.0], np.float32)
    rrf = schema.client_request(plans.plan_search(SearchRequest(q, mode="rrf", limit=4, corpus=2)))
    assert rrf.query.rrf.k == 60 and rrf.limit == 4
    assert [(p.using, p.limit) for p in rrf.prefetch] == [("image", plans.RRF_MIN_DEPTH), ("title", plans.RRF_MIN_DEPTH)]
    assert rrf.prefetch[0].filter.must[0].key == "corpus" and rrf.prefetch[0].filter.must[0].match.value == 2
    fused = schema.client_request(plans.plan_search(SearchRequest(q, limit=3, exact=True, hnsw_ef=32)))
    assert fused.using == "fused" and fused.params.exact and fused.params.hnsw_ef == 32
    assert schema.client_request(plans.plan_search(SearchRequest(q)), with_params=False).params is None
    request = SearchRequest(q, mode="weighted", limit=2, with_payload=False)
    *tops, combined = plans.plan_weighted(request, FieldWeights(image=0.25, title=0.75), depth=40)
    weighted = schema.client_request(combined)
    assert [t.limit for t in tops] == [40, 40]
    assert weighted.query.defaults == {"$score[0]": 0.0, "$score[1]": 0.0}
    assert [m.mult for m in weighted.query.formula.sum] == [[0.25, "$score[0]"], [0.75, "$score[1]"]]
    assert [(p.using, p.limit, len(p.prefetch)) for p in weighted.prefetch] == [("image", 80, 2), ("title", 80, 2)]
    assert weighted.with_payload.include == ["product_id"]
    assert schema.edge_request(combined).limit == 2  # the embedded translation accepts the same plan


def _hits(*scores: float) -> list[Hit]:
    return [Hit(f"p{i}", s) for i, s in enumerate(scores)]


def test_weighted_certificate() -> None:
    request = SearchRequest(np.ones(2), mode="weighted", limit=2)
    weights = FieldWeights(image=0.5, title=0.5)
    tops = [_hits(0.9, 0.8, 0.6), _hits(0.7, 0.5, 0.4)]  # depth 3: outside points score <= 0.5·0.6 + 0.5·0.4
    assert plans.weighted_certified(request, weights, tops, _hits(0.7, 0.5), depth=3)
    assert not plans.weighted_certified(request, weights, tops, _hits(0.7, 0.49), depth=3)
    # a short list holds every point with that field: only the other field bounds outsiders (0.5·0.6)
    assert plans.weighted_certified(request, weights, [tops[0], _hits(0.7)], _hits(0.7, 0.31), depth=3)
    # negative cosines: an outsider scores at most 0 in that field
    assert plans.weighted_certified(request, weights, [_hits(0.1, -0.2, -0.3)] * 2, _hits(0.1, 0.0), depth=3)
    assert plans.weighted_certified(request, weights, [_hits(0.2), _hits()], _hits(0.1), depth=3)


def test_records_made_before_keyword_search_have_no_bm25() -> None:
    data = schema.record_to_json(CollectionRecord("old", model_ref="m", dim=4))
    assert data["bm25"] == {"k": 1.2, "b": 0.75, "avg_len": 12.0, "language": "english"}
    del data["bm25"]  # what gcl-vdb wrote before keyword search
    old = schema.record_from_json(data, "test")
    assert old.bm25 is None and "bm25" not in old.extra
    assert schema.record_from_json(schema.record_to_json(old), "test") == old
    with pytest.raises(StoreError, match="collections add-bm25 old"):
        old.require_bm25("hybrid")
    with pytest.raises(StoreError, match="unreadable"):
        schema.record_from_json({**data, "bm25": {"k": -1}}, "test")


@pytest.mark.parametrize("bad", [dict(k=-0.1), dict(b=1.5), dict(avg_len=0), dict(k=float("nan")),
                                 dict(language="klingon"), dict(b="0.5")])
def test_bm25_settings_validation(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Bm25Settings(**bad)


def test_bm25_vectors_of_documents_and_queries() -> None:
    settings = Bm25Settings()
    red_shoes, none, stop, empty = bm25_document_vectors(["Red shoes, red!", None, "the of", ""], settings)
    assert none is stop is empty is None  # no vector: not in N, never matched
    assert len(red_shoes) == 2  # red (tf 2), shoe (tf 1); |d| = 3 tokens
    weights = sorted(red_shoes.values)
    part = [tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * 3 / 12.0)) for tf in (1, 2)]
    np.testing.assert_allclose(weights, part, rtol=1e-6)
    query = bm25_query_vector("red red SHOES the", settings)
    assert sorted(query.indices) == sorted(red_shoes.indices) and query.values == (1.0, 1.0)
    assert len(bm25_query_vector("the and", settings)) == 0


def test_client_request_of_the_keyword_modes() -> None:
    q = np.array([1.0, 0.0], np.float32)
    sparse = bm25_query_vector("red shoes", Bm25Settings())
    bm25 = schema.client_request(plans.plan_search(SearchRequest(None, mode="bm25", text="red shoes", corpus=2),
                                                   sparse))
    assert bm25.using == "bm25" and bm25.query.nearest.indices == list(sparse.indices)
    assert bm25.params.idf.corpus.must[0].key == "corpus" and bm25.params.idf.corpus.must[0].match.value == 2
    local = schema.client_request(plans.plan_search(SearchRequest(None, mode="bm25", text="x", corpus=1), sparse),
                                  with_params=False)
    assert local.params.idf.corpus.must[0].match.value == 1 and not local.params.exact
    everywhere = plans.plan_search(SearchRequest(None, mode="bm25", text="red shoes"), sparse)
    assert schema.client_request(everywhere).params is None  # the whole collection is the IDF corpus
    request = SearchRequest(q, mode="hybrid", text="red shoes", limit=20, fusion="dbsf", exact=True)
    hybrid = schema.client_request(plans.plan_search(request, sparse))
    assert hybrid.query.fusion == "dbsf" and hybrid.limit == 20
    assert [(p.using, p.limit) for p in hybrid.prefetch] == [("fused", 100), ("bm25", 100)]
    rrf = schema.client_request(plans.plan_search(replace(request, fusion="rrf", rrf_k=7), sparse))
    assert rrf.query.rrf.k == 7
    assert schema.edge_request(plans.plan_search(request, sparse)).limit == 20
    with pytest.raises(ValueError, match="sparse vector"):
        plans.plan_search(request)


def test_an_identity_kept_in_extra_by_early_shard_builds_becomes_the_typed_field() -> None:
    identity = ModelIdentity("runs/gcl/model", "ab" * 32, 4, Preprocessing(32, (0.5,) * 3, (0.25,) * 3, "bicubic",
                                                                          "shortest", 0, 77))
    data = schema.record_to_json(CollectionRecord("c", model_ref="runs/gcl/model", dim=4, extra={"note": "x"}))
    data["identity"] = None
    data["extra"]["model_identity"] = identity.to_dict()  # where the first `ingest --embeddings` builds kept it
    record = schema.record_from_json(data, "test")
    assert record.identity == identity and record.extra == {"note": "x"}
    assert schema.record_from_json(schema.record_to_json(record), "test") == record
