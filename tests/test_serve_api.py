"""The HTTP contract of `gcl-vdb serve`: search and batch answers equal the search API's, products and
their images (never a file outside the collection's images folder), validation, the API key, body
limits, CORS, metrics, health, OpenAPI, the page's escaping, and 503s instead of time-outs under overload."""

from __future__ import annotations

import base64
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gcl_vectordb.domain import FieldWeights, SearchMode
from gcl_vectordb.search import search_products
from gcl_vectordb.serve import BatchLimits, SearchService, ServeConfig, create_app, open_service
from gcl_vectordb.serve.api import BatchOut, ProductOut, SearchOut
from tests.ingest_fixtures import HOSTILE
from tests.serve_helpers import HashEncoder, SlowEncoder, handmade_collection, running_app

KEY = "k3y-that-must-never-be-logged"


def config(store: str | Path, collection: str = "gs", **settings) -> ServeConfig:
    return ServeConfig(collection=collection, store=str(store), **settings)


@pytest.fixture(scope="module")
def service(ingested: Path) -> SearchService:
    service = open_service(config(ingested))
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service: SearchService, ingested: Path) -> TestClient:
    return TestClient(create_app(service, config(ingested)))  # no lifespan: the module's service stays open


def expected(service: SearchService, text: str, **options) -> list[tuple[str, float]]:
    result = search_products(service.store, "gs", text, encoder=service.encoder, **options)
    return [(hit.product_id, hit.score) for hit in result.hits]


def by_score(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(hits, key=lambda hit: (-hit[1], hit[0]))


@pytest.mark.parametrize("mode", list(SearchMode))
def test_search_answers_what_the_search_api_answers(client: TestClient, service: SearchService,
                                                    mode: SearchMode) -> None:
    response = client.post("/search", json={"query": "green handbag", "mode": mode.value, "limit": 7})
    assert response.status_code == 200, response.text
    body = SearchOut.model_validate(response.json())
    # sorted: the order of equal scores is the engine's choice (RRF ties are common in hybrid search)
    assert by_score([(h.product_id, h.score) for h in body.hits]) == by_score(
        expected(service, "green handbag", mode=mode, limit=7))
    assert [h.rank for h in body.hits] == list(range(1, 8)) and body.mode is mode and body.collection == "gs"
    assert all(h.image_url == f"/images/{h.product_id}" and h.title for h in body.hits)


def test_search_filters_weights_limits_and_batches(client: TestClient, service: SearchService) -> None:
    only_1 = client.post("/search", json={"query": "red dress", "corpus": 1, "limit": 1000}).json()
    assert only_1["hits"] and {h["corpus"] for h in only_1["hits"]} == {1}
    assert len(only_1["hits"]) == service.store.count("gs", corpus=1)
    weights = {"image": 0.2, "title": 0.8}
    weighted = client.post("/search", json={"query": "red dress", "mode": "weighted", "weights": weights}).json()
    assert [(h["product_id"], h["score"]) for h in weighted["hits"]] == expected(
        service, "red dress", mode="weighted", weights=FieldWeights(**weights))

    searches = [{"query": "red dress", "limit": 3}, {"query": "leather bag", "mode": "rrf", "limit": 4},
                {"query": "blue shirt", "corpus": 2}]
    response = client.post("/search/batch", json={"searches": searches})
    batch = BatchOut.model_validate(response.json())
    assert [r.query for r in batch.results] == ["red dress", "leather bag", "blue shirt"]
    for search, result in zip(searches, batch.results, strict=True):
        assert result == SearchOut.model_validate(client.post("/search", json=search).json())


@pytest.mark.parametrize("body, message", [
    ({"query": ""}, "at least 1 character"),
    ({"query": "   "}, "the query text is empty"),
    ({"query": "x" * 1001}, "at most 1000 characters"),
    ({"query": "red", "limit": 0}, "greater than or equal to 1"),
    ({"query": "red", "limit": 1001}, "less than or equal to 1000"),
    ({"query": "red", "mode": "magic"}, "fused"),
    ({"query": "red", "corpus": 3}, "Input should be 1 or 2"),
    ({"query": "red", "weights": {"image": 1}}, "weights apply to the weighted mode"),
    ({"query": "red", "mode": "weighted", "weights": {"price": 1}}, "Input should be 'image' or 'title'"),
    ({"query": "red", "mode": "weighted", "weights": {"image": -1}}, "must be finite and ≥ 0"),
    ({"query": "red", "exact": True}, "Extra inputs are not permitted"),
    ({"query": "red", "mode": "bm25", "fusion": "dbsf"}, "fusion applies to the hybrid mode"),
    ({"query": "red", "mode": "hybrid", "fusion": "max"}, "'rrf' or 'dbsf'"),
])
def test_bad_searches_are_422_with_the_reason(client: TestClient, body: dict, message: str) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422 and message in response.text, response.text
    assert client.post("/search/batch", json={"searches": [{"query": "ok"}, body]}).status_code == 422
    assert client.post("/search/batch", json={"searches": []}).status_code == 422
    assert client.post("/search", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_hybrid_fusion_and_keyword_search_on_a_collection_without_bm25(
    client: TestClient, service: SearchService, tmp_path: Path
) -> None:
    body = client.post("/search", json={"query": "green handbag", "mode": "hybrid", "fusion": "dbsf"}).json()
    assert body["fusion"] == "dbsf" and SearchOut.model_validate(body).fusion == "dbsf"
    assert by_score([(h["product_id"], h["score"]) for h in body["hits"]]) == by_score(expected(
        service, "green handbag", mode="hybrid", fusion="dbsf"))
    assert client.post("/search", json={"query": "green handbag"}).json()["fusion"] is None
    store, _ = handmade_collection(tmp_path, {"a": None, "b": None}, bm25=False)
    old = open_service(config(store, "hand"), encoder=HashEncoder())
    with TestClient(create_app(old, config(store, "hand"))) as client:
        refused = client.post("/search", json={"query": "red", "mode": "bm25"})
        assert refused.status_code == 422 and "gcl-vdb collections add-bm25 hand" in refused.text
        page = client.get("/", params={"q": "red", "mode": "hybrid"})
        assert page.status_code == 422 and "add-bm25 hand" in page.text
        assert client.post("/search", json={"query": "red"}).status_code == 200  # dense modes still answer


def test_products_and_their_images(client: TestClient, service: SearchService) -> None:
    hit = client.post("/search", json={"query": "green handbag", "limit": 1}).json()["hits"][0]
    product = ProductOut.model_validate(client.get(f"/products/{hit['product_id']}").json())
    [stored] = service.store.retrieve("gs", [hit["product_id"]])
    assert product.payload == dict(stored.payload) and product.title == hit["title"]
    assert product.image_url == hit["image_url"]

    image = client.get(hit["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (service.images_root / stored.payload["image"]).read_bytes()
    assert "sandbox" in image.headers["content-security-policy"]
    assert client.get("/products/no-such-id").status_code == 404
    assert client.get("/images/no-such-id").status_code == 404
    assert client.get("/images/..%2F..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_images_never_come_from_outside_the_collections_images_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not yours")
    products = {"good": "ok/good.jpg", "up": "../secret.jpg", "absolute": str(secret), "link": "ok/link.jpg",
                "text": "ok/notes.txt", "none": None, "dir": "ok"}
    store, images = handmade_collection(tmp_path, products)
    (images / "ok").mkdir()
    (images / "ok" / "good.jpg").write_bytes(b"\xff\xd8 a picture")
    (images / "ok" / "notes.txt").write_text("not an image")
    (images / "ok" / "link.jpg").symlink_to(secret)
    service = open_service(config(store, "hand"), encoder=HashEncoder())
    with TestClient(create_app(service, config(store, "hand"))) as client:
        assert client.get("/images/good").content == b"\xff\xd8 a picture"
        for product_id in ("up", "absolute", "link", "text", "none", "dir"):
            response = client.get(f"/images/{product_id}")
            assert response.status_code == 404 and b"not yours" not in response.content, product_id
            assert client.get(f"/products/{product_id}").status_code == 200
    assert not service.ready  # the app's shutdown closed the service


def test_every_request_needs_the_api_key_when_one_is_set(service: SearchService, ingested: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = TestClient(create_app(service, config(ingested, api_key=KEY)))
    for method, path in [("POST", "/search"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/"),
                         ("GET", "/openapi.json"), ("GET", "/products/x")]:
        response = client.request(method, path, json={"query": "red"})
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic"), path
    basic = base64.b64encode(f"anyone:{KEY}".encode()).decode()
    for headers in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}, {"authorization": f"Basic {basic}"}):
        assert client.post("/search", json={"query": "red"}, headers=headers).status_code == 200, headers
    for headers in ({"x-api-key": KEY[:-1]}, {"x-api-key": KEY + "x"}, {"authorization": f"Bearer {KEY[1:]}"},
                    {"authorization": "Basic !!"}, {"authorization": KEY}):
        assert client.post("/search", json={"query": "red"}, headers=headers).status_code == 401, headers
    assert KEY not in caplog.text


def test_request_bodies_are_limited(service: SearchService, ingested: Path) -> None:
    client = TestClient(create_app(service, config(ingested, max_body_bytes=1024)))
    small = {"query": "red dress"}
    assert client.post("/search", json=small).status_code == 200
    padded = b'{"query": "red", "pad": "' + b"x" * 2000 + b'"}'
    assert client.post("/search", content=padded, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no content-length: counted as it streams
        yield b'{"query": "red", "pad": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 1024 bytes" in response.text


def test_cors_is_off_unless_asked(service: SearchService, ingested: Path) -> None:
    preflight = {"origin": "https://shop.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type"}
    closed = TestClient(create_app(service, config(ingested)))
    assert "access-control-allow-origin" not in closed.options("/search", headers=preflight).headers
    assert "access-control-allow-origin" not in closed.post("/search", json={"query": "red"},
                                                            headers={"origin": "https://shop.example"}).headers
    opened = TestClient(create_app(service, config(ingested, cors_origins=("https://shop.example",))))
    assert opened.options("/search", headers=preflight).headers["access-control-allow-origin"] == \
        "https://shop.example"
    assert "access-control-allow-origin" not in opened.options(
        "/search", headers={**preflight, "origin": "https://evil.example"}).headers


def test_metrics_health_readiness_and_docs(client: TestClient, service: SearchService) -> None:
    client.post("/search", json={"query": "red"})
    client.get("/products/some-unknown-id")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'gcl_vdb_http_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'route="/products/{product_id}",status="404"' in text and "some-unknown-id" not in text
    assert 'gcl_vdb_http_request_seconds_bucket{le="0.005",route="/search"}' in text
    assert "gcl_vdb_embedding_batch_size_count" in text and "gcl_vdb_queue_depth 0.0" in text
    assert "gcl_vdb_rejected_total" in text
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["products"] == service.size == service.store.count("gs") > 0
    spec = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/products/{product_id}", "/images/{product_id}", "/", "/healthz",
            "/readyz", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    assert client.post("/search", json={"query": "red"}).headers["x-content-type-options"] == "nosniff"


def test_the_page_escapes_everything_and_runs_no_script(hostile_store: Path) -> None:
    service = open_service(config(hostile_store))
    with TestClient(create_app(service, config(hostile_store))) as client:
        empty = client.get("/")
        assert empty.status_code == 200 and '<input type="search" name="q" value=""' in empty.text
        page = client.get("/", params={"q": HOSTILE, "mode": "title", "limit": 6})
    assert page.status_code == 200 and "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()  # neither the query nor the hostile title
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2  # the query box and a title
    assert page.text.count('<article class="card"') == 6 and page.text.count('<img src="images/') == 6
    assert '<option value="title" selected>' in page.text


def test_overload_gives_503_with_retry_after_never_a_time_out(tmp_path: Path) -> None:
    """A slow model (0.2 s a call), batches of 1 and a queue of 2: of 12 simultaneous queries some are
    refused at once, every other one is answered, and none waits past what the queue bound allows."""
    store, _ = handmade_collection(tmp_path, {f"p{i}": None for i in range(10)})
    slow = SlowEncoder(HashEncoder(), delay_s=0.2)
    limits = BatchLimits(max_batch=1, max_wait_s=0.0, queue_size=2)
    overloaded = open_service(config(store, "hand", batching=limits), encoder=slow)
    with running_app(create_app(overloaded, config(store, "hand", batching=limits))) as url, \
            httpx.Client(base_url=url, timeout=10) as http:

        def search(i: int) -> tuple[int, float, httpx.Response]:
            started = time.perf_counter()
            response = http.post("/search", json={"query": f"red dress {i}", "limit": 3})
            return i, time.perf_counter() - started, response

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(search, range(12)))
        statuses = [r.status_code for _, _, r in answers]
        assert set(statuses) == {200, 503}, statuses
        assert statuses.count(200) >= limits.queue_size  # those queued at once, at least
        for i, seconds, response in answers:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1" and seconds < 1.0
            else:
                assert response.json()["query"] == f"red dress {i}" and len(response.json()["hits"]) == 3
                assert seconds < 12 * 0.2 + 2  # bounded by the queue, not by the load

        too_many = http.post("/search/batch", json={"searches": [{"query": f"q{i}"} for i in range(5)]})
        assert too_many.status_code == 503  # more than the queue can hold: refused whole
        rejected = http.get("/metrics").text
    assert f"gcl_vdb_rejected_total {statuses.count(503) + 5}.0" in rejected
    assert max(slow.batches) == 1 and len(slow.batches) == statuses.count(200)
    assert not overloaded.ready


def test_shutdown_refuses_new_work(tmp_path: Path) -> None:
    store, _ = handmade_collection(tmp_path, {"a": None, "b": None})
    service = open_service(config(store, "hand"), encoder=HashEncoder())
    client = TestClient(create_app(service, config(store, "hand")))
    assert client.post("/search", json={"query": "anything", "limit": 5}).json()["hits"]
    service.close()
    assert client.get("/readyz").status_code == 503
    refused = client.post("/search", json={"query": "anything"})
    assert refused.status_code == 503 and "shutting down" in refused.text and refused.headers["retry-after"]
    page = client.get("/", params={"q": "anything"})
    assert page.status_code == 503 and "try again" in page.text and page.headers["retry-after"]
    assert os.path.isdir(store)
