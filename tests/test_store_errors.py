"""Errors a user meets with the store: a locked collection, an unreachable server, the wrong model,
an API key that must never leak; and the server backend's bulk-load, cluster and retry behaviour."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gcl_vectordb.domain import FieldWeights, ModelIdentity, Preprocessing
from gcl_vectordb.errors import CollectionInUse, ModelMismatch, OutOfSpace, StoreError, StoreUnreachable
from gcl_vectordb.store import (
    CollectionRecord,
    PointRecord,
    open_store,
    product_payload,
    require_model,
)
from gcl_vectordb.store.server import ServerStore, redact_url
from tests.qdrant_fakes import FakeRest, fake_rest

DIM = 8
SECRET = "s3cr3t-api-key-do-not-print"


def _record(name: str = "products") -> CollectionRecord:
    return CollectionRecord(name, model_ref="tiny-clip@test", dim=DIM, field_weights=FieldWeights(image=0.5, title=0.5))


def _points(n: int) -> list[PointRecord]:
    rng = np.random.default_rng(0)
    return [PointRecord(f"p{i}", {"fused": rng.normal(size=DIM)}, product_payload(f"p{i}", "t", None, 1))
            for i in range(n)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- embedded: one process per collection

HOLDER = textwrap.dedent("""
    import sys
    from gcl_vectordb.store import open_store
    store = open_store(sys.argv[1])
    print("holding", store.count("products"), flush=True)
    sys.stdin.read()  # hold the shard until the test closes our stdin
    store.close()
""")


@pytest.fixture
def held_store(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Path]:
    """An embedded store whose collection a second, real process holds open."""
    root = tmp_path / "store"
    with open_store(root) as store:
        store.create_collection(_record())
        store.upsert("products", _points(5))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], env=subprocess_env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding 5"
        yield root
    finally:
        holder.communicate("", timeout=60)


def test_collection_held_by_another_process_is_in_use(held_store: Path) -> None:
    with open_store(held_store) as store:
        assert [r.name for r in store.list_collections()] == ["products"]  # reading records needs no lock
        with pytest.raises(CollectionInUse) as raised:
            store.count("products")
        with pytest.raises(CollectionInUse):
            store.drop("products")
    message = str(raised.value)
    assert message.startswith("collection products is in use by pid ") and "\n" not in message
    assert f"(python -c {held_store}, since " in message  # who holds it: pid, command line, start time
    assert message.endswith("— wait for it to finish or stop it, then run the command again")
    assert (held_store / "products" / "collection.json").is_file()


def test_collection_is_usable_again_once_the_other_process_stops(tmp_path: Path,
                                                                 subprocess_env: dict[str, str]) -> None:
    root = tmp_path / "store"
    with open_store(root) as store:
        store.create_collection(_record())
        store.upsert("products", _points(3))
    out = subprocess.run([sys.executable, "-c", HOLDER, str(root)], env=subprocess_env, input="",
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "holding 3"
    with open_store(root) as store:
        assert store.count("products") == 3


def test_a_local_mode_folder_open_twice_is_in_use(tmp_path: Path) -> None:
    with open_store(f"local:{tmp_path / 'q'}"), pytest.raises(CollectionInUse, match="in use by another process"):
        open_store(f"local:{tmp_path / 'q'}")


# ---------------------------------------------------------------- server: unreachable, API key


def test_unreachable_server_names_the_url_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnreachable) as raised:
        open_store(url, api_key=SECRET, timeout_s=2)
    message = str(raised.value)
    assert message.startswith(f"cannot reach the Qdrant server at {url}")
    assert "\n" not in message and SECRET not in message and SECRET not in caplog.text
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_credentials_in_the_url_are_redacted() -> None:
    assert redact_url("https://user:pw@qdrant.example:6333/x") == "https://qdrant.example:6333/x"
    assert redact_url("http://localhost:6333") == "http://localhost:6333"


@pytest.fixture
def fake_qdrant() -> Iterator[tuple[str, type[FakeRest]]]:
    with fake_rest() as served:
        yield served


def test_api_key_reaches_the_server_but_no_repr_log_or_error(
    fake_qdrant: tuple[str, type[FakeRest]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = fake_qdrant
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # qdrant-client's own warnings go to the log, never raw
        store = open_store(url, api_key=SECRET)
    assert "qdrant-client: Api key is used with an insecure connection" in caplog.text  # http + key
    with store:
        assert store.list_collections() == []
        assert SECRET not in repr(store) and SECRET not in repr(vars(store)["options"])
    assert handler.seen_keys and set(handler.seen_keys) == {SECRET}
    handler.status = 401
    with pytest.raises(StoreError) as raised:
        open_store(url, api_key="wrong-" + SECRET)
    assert "HTTP 401" in str(raised.value) and "refused the API key given" in str(raised.value)
    assert "set the API key" not in str(raised.value)  # it is set: the hint says so
    assert SECRET not in str(raised.value) and SECRET not in caplog.text
    with pytest.raises(StoreError, match="HTTP 401.* — set the API key in the environment variable"):
        open_store(url)


# ---------------------------------------------------------------- model mismatch


def _identity(ref: str, sha: str = "ab" * 32, dim: int = DIM) -> ModelIdentity:
    return ModelIdentity(ref, sha, dim, Preprocessing(32, (0.5,) * 3, (0.25,) * 3, "bicubic", "shortest", 0, 77))


def test_require_model_refuses_another_model_of_the_same_dim_and_names_both() -> None:
    record = dataclasses.replace(_record(), identity=_identity("tiny-clip@test"))
    require_model(record, _identity("tiny-clip.onnx"))  # the export of the same weights: the same model
    with pytest.raises(ModelMismatch) as raised:
        require_model(record, _identity("other-clip", sha="cd" * 32))
    message = str(raised.value)
    assert "model other-clip (weights cdcdcdcdcdcd, dim 8) has other weights" in message
    assert "tiny-clip@test (weights abababababab, dim 8)" in message
    with pytest.raises(ModelMismatch, match="ViT-B-32.*embeds in 512 dimensions but collection 'products' holds 8-dim"):
        require_model(record, _identity("ViT-B-32@laion", dim=512))


def test_a_collection_without_a_recorded_identity_accepts_only_its_own_model_ref(
    caplog: pytest.LogCaptureFixture,
) -> None:
    legacy = _record()  # created before identities were recorded: model_ref and dim only
    require_model(legacy, _identity("tiny-clip@test"))
    assert "records no model identity" in caplog.text  # trusted, with a warning
    with pytest.raises(ModelMismatch, match="records no model identity .* built by tiny-clip@test, not tiny-clip.onnx"):
        require_model(legacy, _identity("tiny-clip.onnx"))
    with pytest.raises(ModelMismatch, match="embeds in 512 dimensions"):
        require_model(legacy, _identity("tiny-clip@test", dim=512))


# ---------------------------------------------------------------- server: bulk load, cluster, retries


class _Recorder:
    """Wraps a qdrant-client, records every call's name and keyword arguments, and can inject failures."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[BaseException]] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if self.failures.get(name):
                raise self.failures[name].pop(0)
            return target(*args, **kwargs)

        return call

    def names(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


@pytest.fixture
def recorded() -> Iterator[tuple[ServerStore, _Recorder]]:
    store = open_store(":memory:", backoff_s=0.0, max_retries=3, batch_size=4, query_batch_size=2, poll_s=0.0)
    assert isinstance(store, ServerStore)
    recorder = _Recorder(store._client)
    store._client = recorder
    yield store, recorder
    store.close()


def test_create_passes_cluster_and_bulk_load_settings_and_optimize_restores(recorded) -> None:
    store, recorder = recorded
    store.create_collection(_record(), shards=3, replicas=2, bulk_load=True)
    (create,) = recorder.names("create_collection")
    assert create["shard_number"] == 3 and create["replication_factor"] == 2
    assert create["optimizers_config"].indexing_threshold == 0
    indexes = {(k["field_name"], str(k["field_schema"].value)) for k in recorder.names("create_payload_index")}
    assert indexes == {("corpus", "integer"), ("product_id", "keyword")}
    store.optimize("products")
    (update,) = recorder.names("update_collection")
    assert update["optimizers_config"].indexing_threshold == 20_000


def test_optimize_on_a_server_waits_for_green(recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    store, recorder = recorded
    store.create_collection(_record())
    statuses = iter(["yellow", "green", "yellow", "green", "green"])
    real_get = recorder._client.get_collection

    def get_collection(name: str) -> Any:
        info = real_get(name)
        return SimpleNamespace(config=info.config, status=SimpleNamespace(value=next(statuses)))

    monkeypatch.setattr(recorder._client, "get_collection", get_collection)
    store.local = False  # behave like a server: local mode has no optimizer to wait for
    store.optimize("products")
    assert next(statuses, "drained") == "drained"  # polled until green twice in a row


def _connect_error() -> BaseException:
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException

    return ResponseHandlingException(httpx.ConnectError("connection reset"))


def test_upsert_retries_transient_failures_per_batch(recorded, caplog: pytest.LogCaptureFixture) -> None:
    store, recorder = recorded
    store.create_collection(_record())
    recorder.failures["upsert"] = [_connect_error(), _connect_error()]
    store.upsert("products", _points(10))  # batches of 4, 4, 2; the first fails twice
    assert len(recorder.names("upsert")) == 3 + 2
    assert store.count("products") == 10
    assert caplog.text.count("retry") == 2


def test_upsert_gives_up_after_max_retries_and_does_not_retry_bad_requests(recorded) -> None:
    from qdrant_client.http.exceptions import UnexpectedResponse

    store, recorder = recorded
    store.create_collection(_record())
    recorder.failures["upsert"] = [_connect_error() for _ in range(4)]
    with pytest.raises(StoreUnreachable, match="connection reset"):
        store.upsert("products", _points(2))
    assert len(recorder.names("upsert")) == 4  # 1 try + 3 retries
    recorder.failures["upsert"] = [UnexpectedResponse(400, "Bad Request", b"{}", None)]
    with pytest.raises(StoreError, match="HTTP 400 Bad Request"):
        store.upsert("products", _points(2))
    assert len(recorder.names("upsert")) == 5


# ---------------------------------------------------------------- the same errors through the CLI


def test_cli_reports_a_held_collection_in_one_line(held_store: Path) -> None:
    from typer.testing import CliRunner

    from gcl_vectordb.cli.app import app

    runner = CliRunner()
    listed = runner.invoke(app, ["collections", "list", "--qdrant", str(held_store), "--json"])
    assert listed.exit_code == 0
    assert re.fullmatch(rf"in use by pid \d+ \(python -c {held_store}, since \d\d:\d\d:\d\d\)",
                        json.loads(listed.stdout)[0]["note"])
    dropped = runner.invoke(app, ["collections", "drop", "products", "--yes", "--qdrant", str(held_store)])
    assert dropped.exit_code == 1 and "Traceback" not in dropped.output
    assert "error: collection products is in use by pid " in dropped.output
    assert "wait for it to finish or stop it" in dropped.output


def test_cli_reports_an_unreachable_server_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gcl_vectordb.cli.app import app

    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    url = f"http://127.0.0.1:{_closed_port()}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw UserWarning would surface as an exception here
        result = CliRunner().invoke(app, ["collections", "list", "--qdrant", url])
    assert result.exit_code == 1 and "Traceback" not in result.output and "UserWarning" not in result.output
    assert f"cannot reach the Qdrant server at {url}" in result.output and SECRET not in result.output


def test_search_batches_are_sent_in_bounded_chunks(recorded) -> None:
    from gcl_vectordb.store import SearchRequest

    store, recorder = recorded
    store.create_collection(_record())
    store.upsert("products", _points(6))
    requests = [SearchRequest(np.eye(DIM)[i % DIM], limit=3) for i in range(5)]
    assert store.search_batch("products", requests) == [store.search("products", r) for r in requests]
    assert [len(k["requests"]) for k in recorder.names("query_batch_points")][:3] == [2, 2, 1]


def test_an_unwritable_store_location_is_a_store_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StoreError, match=f"the store location {not_a_folder} is not a directory"):
        open_store(not_a_folder)
    below_a_file = not_a_folder / "store"
    with open_store(below_a_file) as store, pytest.raises(StoreError, match="cannot lock collection products"):
        store.create_collection(_record())


def test_a_create_that_fails_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shard is made, then writing the record fails (a full disk, say): no folder stays behind, and
    the same create succeeds once the cause is gone."""
    from gcl_vectordb.store import embedded
    from gcl_vectordb.store.storage import StorageOptions

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    record = CollectionRecord("big", model_ref="m", dim=DIM, storage=StorageOptions.preset("int8-disk"))
    with open_store(tmp_path / "store") as store:
        monkeypatch.setattr(embedded, "write_json_atomic", full_disk)
        with pytest.raises(OutOfSpace, match="the disk is full: could not save the record of big"):
            store.create_collection(record)
        assert not (tmp_path / "store" / "big").exists() and store.list_collections() == []
        monkeypatch.undo()
        assert store.create_collection(record) == record
    with open_store(tmp_path / "store") as store:
        assert store.get_record("big").storage == record.storage


def test_a_server_create_that_fails_half_way_drops_the_collection(recorded) -> None:
    from qdrant_client.http.exceptions import UnexpectedResponse

    store, recorder = recorded
    record = _record()
    recorder.failures["create_payload_index"] = [UnexpectedResponse(500, "Internal Server Error", b"{}", None)]
    with pytest.raises(StoreError, match="refused to index the payload of products: HTTP 500"):
        store.create_collection(record)
    assert recorder.names("delete_collection") and not recorder._client.collection_exists("products")
    assert store.create_collection(record) == record  # once the cause is gone, the same create works


# ---------------------------------------------------------------- add_bm25 under hostile conditions

KILLED_UPGRADE = textwrap.dedent("""
    import os, signal, sys
    from gcl_vectordb.store import open_store
    from gcl_vectordb.store.embedded import EmbeddedStore
    write = EmbeddedStore._write_sparse
    calls = []
    def dying(self, name, updates):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the upgrade
        write(self, name, updates)
    EmbeddedStore._write_sparse = dying
    with open_store(sys.argv[1], batch_size=10) as store:
        store.add_bm25("products")
""")


def _old_collection(root: Path, n: int = 60) -> None:
    import dataclasses

    rng = np.random.default_rng(1)
    words = ["red", "blue", "shoe", "bag", "dress", "leather", "cotton", "nike"]
    with open_store(root) as store:
        store.create_collection(dataclasses.replace(_record(), bm25=None))
        store.upsert("products", [
            PointRecord(f"p{i}", {"fused": rng.normal(size=DIM)},
                        product_payload(f"p{i}", " ".join(rng.choice(words, 3)) + " x" * i, None, 1))
            for i in range(n)])


def _bm25_hits(root: Path) -> list[tuple[str, float]]:
    from gcl_vectordb.store import SearchRequest

    with open_store(root) as store:
        return [(h.product_id, round(h.score, 5))
                for h in store.search("products", SearchRequest(None, mode="bm25", text="red leather", limit=20))]


def test_add_bm25_killed_midway_then_run_again(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    root, fresh = tmp_path / "store", tmp_path / "fresh"
    _old_collection(root)
    killed = subprocess.run([sys.executable, "-c", KILLED_UPGRADE, str(root)], env=subprocess_env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    with open_store(root) as store:
        assert store.get_record("products").bm25 is None  # the record changes last
        assert store.count("products") == 60
    with pytest.raises(StoreError, match="add-bm25"):
        _bm25_hits(root)
    with open_store(root) as store:
        store.add_bm25("products")
    _old_collection(fresh)
    with open_store(fresh) as store:
        store.add_bm25("products")
    assert _bm25_hits(root) == _bm25_hits(fresh) and _bm25_hits(root)


def test_add_bm25_on_a_collection_held_by_another_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    root = tmp_path / "store"
    _old_collection(root, n=5)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], env=subprocess_env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding 5"
        with open_store(root) as store, pytest.raises(CollectionInUse):
            store.add_bm25("products")
    finally:
        holder.communicate("", timeout=60)
    with open_store(root) as store:
        assert store.get_record("products").bm25 is None
        assert store.add_bm25("products").bm25 is not None
