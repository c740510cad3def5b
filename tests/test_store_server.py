"""The server backend's scale path without a Qdrant server: the version check on connect, bulk upserts
over gRPC (the bytes on the wire, parallel streams, retries, the API key) against an in-process gRPC
server, and storage options reaching `create_collection`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.grpc import PointsStub

from gcl_vectordb.errors import StoreError, StoreUnreachable
from gcl_vectordb.store import CollectionRecord, SearchRequest, open_store, schema
from gcl_vectordb.store.server import (
    ServerOptions,
    ServerStore,
    check_server_version,
    client_version,
    grpc_port_of,
    supported_servers,
)
from gcl_vectordb.store.storage import StorageOptions
from gcl_vectordb.store.upload import GrpcUploader
from tests.qdrant_fakes import collection_info_json, fake_points_server, fake_rest
from tests.test_store_contract import (
    NAME,
    assert_top_k,
    make_corpus,
    make_query,
    make_record,
    reference_scores,
)

SECRET = "s3cr3t-grpc-key-do-not-print"


# ---------------------------------------------------------------- versions


def test_supported_servers_follow_the_installed_client() -> None:
    assert supported_servers("1.20.0") == ((1, 19), (1, 21))
    assert supported_servers("1.23.1") == ((1, 21), (1, 24))
    assert supported_servers("1.19.0") == ((1, 19), (1, 20))  # never below 1.19: keyword search needs it
    check_server_version("1.20.0", "http://q:6333", "1.20.0")
    check_server_version("v1.21.4-dev", "http://q:6333", "1.20.0")
    check_server_version("1.19.2", "http://q:6333", "1.20.0")


@pytest.mark.parametrize("server", ["1.16.2", "1.18.3", "1.22.0", "2.20.0", "dev", ""])
def test_an_unsupported_server_release_is_a_clear_error(server: str) -> None:
    with pytest.raises(StoreError) as raised:
        check_server_version(server, "http://q:6333", "1.20.0")
    message = str(raised.value)
    assert "http://q:6333" in message and "qdrant-client 1.20.0 supports Qdrant 1.19 to 1.21" in message
    assert "docker compose pull" in message and "\n" not in message


def test_connect_reads_the_server_version_and_refuses_a_mismatch() -> None:
    with fake_rest(version="1.16.2") as (url, handler):
        with pytest.raises(StoreError, match=r"runs Qdrant 1\.16\.2; qdrant-client \d+\.\d+\.\d+ supports"):
            open_store(url)
        handler.version = client_version()
        with open_store(url) as store:
            assert isinstance(store, ServerStore) and store.list_collections() == []


def test_cli_reports_a_version_mismatch_in_one_line() -> None:
    from typer.testing import CliRunner

    from gcl_vectordb.cli.app import app

    with fake_rest(version="1.16.2") as (url, _):
        result = CliRunner().invoke(app, ["collections", "list", "--qdrant", url])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "runs Qdrant 1.16.2" in result.output and len(result.output.strip().splitlines()) == 1


def test_grpc_port_is_the_rest_port_plus_one_unless_given() -> None:
    assert grpc_port_of("http://localhost:6333", ServerOptions()) == 6334
    assert grpc_port_of("http://localhost:6433", ServerOptions()) == 6434  # the compose cluster
    assert grpc_port_of("https://qdrant.example", ServerOptions()) == 6334
    assert grpc_port_of("http://localhost:6333", ServerOptions(grpc_port=7000)) == 7000
    assert grpc_port_of("http://localhost:6333", ServerOptions(grpc_port=0)) == 0  # REST uploads
    with pytest.raises(StoreError, match="grpc_port"):
        ServerOptions(grpc_port=70_000)


# ---------------------------------------------------------------- gRPC uploads


@pytest.fixture
def sink() -> Iterator[QdrantClient]:
    """Where the fake gRPC server puts what it receives; the store reads it back through local mode."""
    client = QdrantClient(location=":memory:")
    yield client
    client.close()


def grpc_store(sink: QdrantClient, port: int, **options: object) -> ServerStore:
    """A ServerStore whose REST side is `sink` (local mode) and whose uploads go over gRPC to `port`."""
    settings = ServerOptions(**{"batch_size": 32, "backoff_s": 0.0, "max_retries": 3, **options})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    uploader = GrpcUploader(lambda: PointsStub(channel), f"127.0.0.1:{port}", parallel=settings.parallel,
                            max_retries=settings.max_retries, backoff_s=settings.backoff_s, timeout_s=10)
    return ServerStore(sink, location=":memory:", local=True, options=settings, uploader=uploader)


def test_points_sent_over_grpc_are_stored_exactly_and_searchable(sink: QdrantClient) -> None:
    """The decoded wire bytes hold every vector bit for bit: exact search equals the numpy brute force."""
    corpus = make_corpus()
    with fake_points_server(sink) as (port, servicer):
        store = grpc_store(sink, port)
        store.create_collection(make_record())
        payloads = [p.payload for p in corpus.points()]
        assert store.upsert_arrays(NAME, corpus.ids, corpus.vectors, corpus.has, payloads) == len(corpus.ids)
    assert servicer.sizes and max(servicer.sizes) == 32 and sum(servicer.sizes) == len(corpus.ids)
    assert store.count(NAME) == len(corpus.ids)
    (stored,) = store.retrieve(NAME, ["p0007"], with_vectors=True)
    i = corpus.ids.index("p0007")
    assert set(stored.vectors) == {f for f in corpus.vectors if corpus.has[f][i]}
    for field, vector in stored.vectors.items():
        np.testing.assert_array_equal(vector, corpus.vectors[field][i])
    assert stored.payload == {**payloads[i], "product_id": "p0007"}
    rng = np.random.default_rng(3)
    for mode in ("fused", "image", "rrf", "weighted", "bm25", "hybrid"):  # bm25: the sparse vectors arrived
        request = SearchRequest(rng.normal(size=16).astype(np.float32), mode=mode, exact=True, corpus=2,
                                text=make_query(rng))
        assert_top_k(store.search(NAME, request), reference_scores(corpus, request), request.limit)


def test_uploads_run_as_parallel_streams(sink: QdrantClient) -> None:
    """The first four requests are held by the server until all four are in flight: a client sending
    one at a time would break the barrier and fail."""
    corpus = make_corpus(n=200)
    with fake_points_server(sink, hold=4) as (port, servicer):
        store = grpc_store(sink, port, parallel=4, max_retries=0)
        store.create_collection(make_record())
        store.upsert(NAME, corpus.points())
    assert len(servicer.metadata) == 7 and store.count(NAME) == 200  # ceil(200 / 32) requests


def test_transient_failures_are_retried_and_nothing_is_lost(sink: QdrantClient, caplog: pytest.LogCaptureFixture) -> None:
    corpus = make_corpus(n=100)
    with fake_points_server(sink) as (port, servicer):
        store = grpc_store(sink, port, parallel=2)
        store.create_collection(make_record())
        servicer.failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
        store.upsert(NAME, corpus.points())
    assert len(servicer.metadata) == 4 + 2 and store.count(NAME) == 100
    assert caplog.text.count("over gRPC failed") == 2 and "retry 1/3" in caplog.text


def test_a_refused_upsert_is_not_retried_and_names_the_reason(sink: QdrantClient) -> None:
    with fake_points_server(sink) as (port, servicer):
        store = grpc_store(sink, port)
        store.create_collection(make_record())
        servicer.failures = [grpc.StatusCode.INVALID_ARGUMENT]
        with pytest.raises(StoreError) as raised:
            store.upsert(NAME, make_corpus(n=10).points())
    assert len(servicer.metadata) == 1
    assert "refused to upsert 10 points into products: INVALID_ARGUMENT: injected failure" in str(raised.value)


def test_retries_give_up_on_an_unreachable_grpc_port(sink: QdrantClient, caplog: pytest.LogCaptureFixture) -> None:
    with fake_points_server(sink) as (port, _):
        pass  # stopped: the port is closed now
    store = grpc_store(sink, port, max_retries=2)
    store.create_collection(make_record())
    with pytest.raises(StoreUnreachable, match=rf"cannot reach the Qdrant server's gRPC port at 127.0.0.1:{port}"):
        store.upsert(NAME, make_corpus(n=5).points())
    assert caplog.text.count("over gRPC failed") == 2


def test_connect_sends_the_api_key_over_grpc_but_never_shows_it(
    sink: QdrantClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole connect path: version check and record over REST, points over gRPC, one API key."""
    caplog.set_level(logging.DEBUG)
    ServerStore(sink, location=":memory:", local=True).create_collection(make_record())
    with fake_points_server(sink) as (port, servicer), fake_rest() as (url, handler):
        handler.collections = {NAME: collection_info_json(sink, NAME)}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # qdrant-client's warning for a key over http goes to the log
            store = open_store(url, api_key=SECRET, grpc_port=port, batch_size=64)
        assert "qdrant-client: Api key is used with an insecure connection" in caplog.text
        with store:
            store.upsert(NAME, make_corpus(n=100).points())
            assert SECRET not in repr(store)
    assert sink.count(NAME).count == 100
    assert [m.get("api-key") for m in servicer.metadata] == [SECRET] * 2
    assert set(handler.seen_keys) == {SECRET} and SECRET not in caplog.text


def test_local_mode_uploads_over_rest(tmp_path: Path) -> None:
    with open_store(f"local:{tmp_path / 'q'}") as store:
        assert isinstance(store, ServerStore) and store.uploader is None


# ---------------------------------------------------------------- storage options reach the server


def test_create_collection_sends_the_storage_options(sink: QdrantClient) -> None:
    storage = StorageOptions.preset("int8-disk").with_settings("image.hnsw=off,title.hnsw_m=8,fused.datatype=float16")
    calls: list[dict] = []
    create = sink.create_collection

    def recording(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return create(*args, **kwargs)

    sink.create_collection = recording  # type: ignore[method-assign]
    store = ServerStore(sink, location=":memory:", local=True)
    record = CollectionRecord("big", model_ref="m", dim=16, storage=storage)
    store.create_collection(record)
    vectors = calls[0]["vectors_config"]
    for name in ("image", "title", "fused"):
        assert vectors[name].on_disk is True
        assert vectors[name].quantization_config.scalar.type.value == "int8"
        assert vectors[name].quantization_config.scalar.quantile == 0.99
        assert vectors[name].quantization_config.scalar.always_ram is True
    assert vectors["image"].hnsw_config.m == 0 and vectors["title"].hnsw_config.m == 8
    assert vectors["fused"].hnsw_config is None and vectors["fused"].datatype.value == "float16"
    assert store.get_record("big").storage == storage
    store._records.clear()
    assert store.get_record("big").storage == storage  # read back from the collection's metadata
    binary = schema.client_vectors_config(16, StorageOptions.preset("binary-disk"))["fused"]
    assert binary.quantization_config.binary.always_ram is True and binary.datatype is None


def test_quantized_searches_send_rescoring_and_exact_ones_ignore_quantization() -> None:
    from gcl_vectordb.store import plans

    storage = StorageOptions.preset("int8-disk")
    q = np.ones(4, np.float32)
    approximate = schema.client_request(plans.plan_search(SearchRequest(q, hnsw_ef=64), storage=storage))
    assert approximate.params.quantization.rescore is True and approximate.params.quantization.oversampling == 2.0
    asked = schema.client_request(plans.plan_search(SearchRequest(q, oversampling=4, rescore=False), storage=storage))
    assert asked.params.quantization.rescore is False and asked.params.quantization.oversampling == 4.0
    exact = schema.client_request(plans.plan_search(SearchRequest(q, mode="rrf", exact=True), storage=storage))
    assert all(p.params.exact and p.params.quantization.ignore for p in exact.prefetch)
    plain = schema.client_request(plans.plan_search(SearchRequest(q), storage=StorageOptions()))
    assert plain.params is None  # nothing to say on an unquantized collection
