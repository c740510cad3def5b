"""The server backend: a Qdrant server or cluster through qdrant-client (or its local mode, for tests).

On connect, the server's release must be one the installed qdrant-client supports (`supported_servers`),
else a StoreError says which release to run. The collection record lives in the collection's own
metadata, under `schema.RECORD_METADATA_KEY`. Bulk loads defer indexing (`indexing_threshold=0`) until
`optimize()`, which restores the threshold and waits for the collection to turn green. Upserts go in
batches over gRPC (`gcl_vectordb.store.upload`: protobuf, `parallel` requests in flight) or, with
`grpc_port=0` and in local mode, over REST; either way each batch is retried with exponential backoff
on transient errors. Everything else (collections, search, count) goes over REST.
The API key is handed to qdrant-client and never kept, logged or shown.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from gcl_vectordb.errors import CollectionInUse, StoreError, StoreUnreachable
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.store import plans, schema
from gcl_vectordb.store.base import StoreBase, collection_not_found, existing_record
from gcl_vectordb.store.bm25 import SPARSE_VECTOR, SparseVector
from gcl_vectordb.store.records import CollectionRecord, PointColumns, validate_collection_name
from gcl_vectordb.store.upload import GrpcUploader

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})
DEFAULT_REST_PORT = 6333
OLDEST_SERVER = (1, 19)
"""Collection metadata, where the record lives, arrived in Qdrant 1.16, adding a sparse vector to a
collection (`add-bm25`) in 1.18 and the per-corpus IDF of the keyword modes in 1.19."""


@dataclass(frozen=True)
class ServerOptions:
    """Client behaviour: timeouts (s), upsert and query batch sizes, retries with backoff `backoff_s · 2^attempt`,
    the indexing threshold (KB) `optimize()` restores after a bulk load, and the wait for green (s).

    Upserts: `grpc_port` None = the REST port + 1 (Qdrant's 6333/6334 pair; 6433/6434 for the compose
    cluster), 0 = upload over REST; `parallel` upsert requests in flight over gRPC.
    """

    timeout_s: int = 60
    batch_size: int = 256
    query_batch_size: int = 64
    max_retries: int = 5
    backoff_s: float = 0.5
    indexing_threshold_kb: int = 20_000
    green_timeout_s: float = 3600.0
    poll_s: float = 1.0
    grpc_port: int | None = None
    parallel: int = 4

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.batch_size, self.query_batch_size, self.parallel) < 1 \
                or self.max_retries < 0 or self.backoff_s < 0:
            raise StoreError(f"invalid server options {self}")
        if self.indexing_threshold_kb < 1 or self.green_timeout_s <= 0 or self.poll_s < 0:
            raise StoreError(f"invalid server options {self}")
        if self.grpc_port is not None and not 0 <= self.grpc_port <= 65535:
            raise StoreError(f"grpc_port must be a port number (0: upload over REST), got {self.grpc_port}")


def client_version() -> str:
    return metadata.version("qdrant-client")


def supported_servers(client: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The oldest and newest Qdrant release (major, minor) qdrant-client `client` works with.

    Qdrant tests each client against the server of its own minor version and the two before it, and
    qdrant-client's own check accepts one minor version newer; gcl-vdb also needs `OLDEST_SERVER`.
    For client 1.20: Qdrant 1.19 to 1.21.
    """
    major, minor = _major_minor(client)
    return max((major, minor - 2), OLDEST_SERVER), (major, minor + 1)


def check_server_version(server: str, location: str, client: str) -> None:
    """Raise StoreError unless the server's release is within `supported_servers(client)`."""
    release = _major_minor(server) if _RELEASE.match(server) else None
    oldest, newest = supported_servers(client)
    if release is not None and oldest <= release <= newest:
        return
    found = f"runs Qdrant {server}" if release is not None else f"reports version {server!r}"
    raise StoreError(
        f"the Qdrant server at {location} {found}; qdrant-client {client} supports Qdrant "
        f"{oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}",
        "run the release docker-compose.yml pins (`docker compose pull && docker compose up -d`)",
    )


_RELEASE = re.compile(r"^v?(\d+)\.(\d+)")


def _major_minor(version: str) -> tuple[int, int]:
    found = _RELEASE.match(version)
    if found is None:
        raise ValueError(f"not a release number: {version!r}")
    return int(found.group(1)), int(found.group(2))


def grpc_port_of(url: str, options: ServerOptions) -> int:
    """The server's gRPC port: `options.grpc_port`, else the REST port (6333 when the URL has none) + 1."""
    if options.grpc_port is not None:
        return options.grpc_port
    return (urlsplit(url).port or DEFAULT_REST_PORT) + 1


def redact_url(url: str) -> str:
    """The URL without user:password, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: no response at all (connection, timeout) or HTTP 429 / 5xx."""
    if isinstance(exc, ResponseHandlingException):
        return True
    return isinstance(exc, UnexpectedResponse) and exc.status_code in TRANSIENT_HTTP


class ServerStore(StoreBase):
    """Collections on a Qdrant server (or in qdrant-client's local mode)."""

    def __init__(self, client: Any, *, location: str, local: bool, options: ServerOptions | None = None,
                 uploader: GrpcUploader | None = None, with_api_key: bool = False):
        self._client = client
        self.with_api_key = with_api_key  # whether a key was given (for the hint of a 401), never the key
        self.location = redact_url(location)
        self.local = local
        self.options = options or ServerOptions()
        self.batch_size = self.options.batch_size
        self.uploader = uploader
        self._records: dict[str, CollectionRecord] = {}

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None, options: ServerOptions | None = None) -> ServerStore:
        """Connect to `http(s)://host:port`, check that the server answers and that its release is one
        the installed qdrant-client supports (StoreError otherwise)."""
        options = options or ServerOptions()
        grpc_port = grpc_port_of(url, options)
        # check_compatibility=False: the client's own check only warns, from a thread; ours below raises.
        with client_warnings_logged():  # e.g. "Api key is used with an insecure connection" (http://)
            client = QdrantClient(url=url, api_key=api_key, timeout=options.timeout_s, grpc_port=grpc_port or 6334,
                                  check_compatibility=False)
        uploader = None
        if grpc_port:
            uploader = GrpcUploader(
                lambda: client.grpc_points, f"{urlsplit(url).hostname}:{grpc_port}", parallel=options.parallel,
                max_retries=options.max_retries, backoff_s=options.backoff_s, timeout_s=options.timeout_s,
            )
        store = cls(client, location=url, local=False, options=options, uploader=uploader,
                    with_api_key=api_key is not None)
        try:
            with store._translated("connect"):
                version = client.info().version
            check_server_version(version, store.location, client_version())
        except StoreError:
            client.close()
            raise
        return store

    @classmethod
    def local_mode(cls, location: str, options: ServerOptions | None = None) -> ServerStore:
        """qdrant-client local mode: `:memory:` or `local:PATH` (pure Python; for tests and tiny data)."""
        path = None if location == ":memory:" else location.removeprefix("local:")
        try:
            with client_warnings_logged():
                client = QdrantClient(location=":memory:") if path is None else QdrantClient(path=path)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise CollectionInUse(f"the local Qdrant store {path} is in use by another process",
                                      "stop it or wait") from None
            raise
        return cls(client, location=location, local=True, options=options)

    def __repr__(self) -> str:
        return f"ServerStore({self.location!r})"

    # ---- collections
    def create_collection(
        self, record: CollectionRecord, *, exist_ok: bool = False, shards: int = 1, replicas: int = 1,
        bulk_load: bool = False,
    ) -> CollectionRecord:
        """Create the collection (three cosine vectors, record in metadata, payload indexes).

        `bulk_load=True` defers HNSW indexing until `optimize()`; `shards`/`replicas` go to the cluster.
        """
        models = schema.client_models()
        with self._translated(f"create collection {record.name}"):
            if self._client.collection_exists(record.name):
                return existing_record(self.get_record(record.name), record, exist_ok, self.location)
            self._client.create_collection(
                record.name, vectors_config=schema.client_vectors_config(record.dim, record.storage),
                sparse_vectors_config=schema.client_sparse_vectors_config(record.bm25 is not None),
                shard_number=shards, replication_factor=replicas,
                optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0) if bulk_load else None,
                metadata={schema.RECORD_METADATA_KEY: schema.record_to_json(record)},
            )
        try:
            with self._translated(f"index the payload of {record.name}"), warnings.catch_warnings():
                # Local mode warns that payload indexes have no effect there; a server uses them.
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for field_name, field_schema in schema.client_payload_indexes():
                    self._client.create_payload_index(
                        record.name, field_name=field_name, field_schema=field_schema, wait=True
                    )
        except StoreError:
            with contextlib.suppress(Exception):  # nothing half-made stays behind
                self._client.delete_collection(record.name)
            raise
        self._records[record.name] = record
        log.info("created collection %s on %s (dim %d, storage %s, bulk load %s)", record.name, self.location,
                 record.dim, record.storage.name, bulk_load)
        return record

    def hold(self, name: str, *, create: bool = False) -> None:
        """Nothing to take: the server serialises concurrent clients (and local mode locks its folder)."""
        validate_collection_name(name)

    def in_use(self, name: str) -> CollectionInUse | None:
        return None

    def get_record(self, name: str) -> CollectionRecord:
        if name in self._records:
            return self._records[name]
        validate_collection_name(name)
        with self._translated(f"read collection {name}"):
            if not self._client.collection_exists(name):
                raise collection_not_found(name, self.location, [r.name for r in self.list_collections()])
            metadata = self._client.get_collection(name).config.metadata or {}
        if schema.RECORD_METADATA_KEY not in metadata:
            raise StoreError(f"collection {name!r} on {self.location} was not created by gcl-vdb",
                             "choose another collection name")
        self._records[name] = schema.record_from_json(metadata[schema.RECORD_METADATA_KEY], name)
        return self._records[name]

    def list_collections(self) -> list[CollectionRecord]:
        """Records of the gcl-vdb collections on the server (others are skipped)."""
        records = []
        with self._translated("list collections"):
            for description in self._client.get_collections().collections:
                metadata = self._client.get_collection(description.name).config.metadata or {}
                if schema.RECORD_METADATA_KEY in metadata:
                    records.append(schema.record_from_json(metadata[schema.RECORD_METADATA_KEY], description.name))
        return sorted(records, key=lambda r: r.name)

    def drop(self, name: str) -> None:
        self.get_record(name)
        with self._translated(f"drop collection {name}"):
            self._client.delete_collection(name)
        self._records.pop(name, None)
        log.info("dropped collection %s from %s", name, self.location)

    def optimize(self, name: str, *, progress: Progress = NULL_PROGRESS) -> None:
        """Restore the indexing threshold (after a bulk load) and wait until the collection is green."""
        self.get_record(name)
        models = schema.client_models()
        threshold = models.OptimizersConfigDiff(indexing_threshold=self.options.indexing_threshold_kb)
        task = progress.task(f"waiting for {name} to be indexed", total=None, unit="step")
        try:
            with self._translated(f"optimize {name}"):
                self._client.update_collection(name, optimizers_config=threshold)
                if not self.local:  # local mode has no optimizer: always exact, always green
                    self._wait_green(name)
        finally:
            task.close()

    def flush(self, name: str) -> None:
        """Nothing to do: upserts wait for the server's acknowledgement (`wait=True`), after which the
        server's write-ahead log holds them; local mode writes through on every call."""
        self.get_record(name)

    def _wait_green(self, name: str) -> None:
        # Green twice in a row: right after the update the optimizer may not have started yet.
        deadline = time.monotonic() + self.options.green_timeout_s
        greens = 0
        while greens < 2:
            status = str(self._client.get_collection(name).status.value).lower()
            greens = greens + 1 if status == "green" else 0
            if time.monotonic() > deadline:
                raise StoreError(f"collection {name} is still {status} after {self.options.green_timeout_s:.0f} s",
                                 "search works meanwhile; check the server's logs and run optimize again")
            if greens < 2:
                time.sleep(self.options.poll_s)

    def close(self) -> None:
        self._client.close()

    # ---- data
    def count(self, name: str, *, corpus: int | None = None) -> int:
        self.get_record(name)
        conditions = [("corpus", corpus)] if corpus is not None else []
        with self._translated(f"count {name}"):
            return self._client.count(name, count_filter=schema.client_filter(conditions), exact=True).count

    def _write(self, name: str, batches: Iterator[PointColumns]) -> None:
        """Over gRPC when there is an uploader (a server), else over REST one batch at a time."""
        if self.uploader is not None:
            self.uploader.upsert(name, batches)
            return
        for batch in batches:
            points = schema.client_points(schema.wire_rows(batch))
            self._retrying(f"upsert {len(points)} points into {name}",
                           lambda points=points: self._client.upsert(name, points=points, wait=True))

    def _add_sparse_vector(self, name: str) -> None:
        with self._translated(f"add the BM25 vector to {name}"):
            params = self._client.get_collection(name).config.params
            if SPARSE_VECTOR not in (params.sparse_vectors or {}):
                self._client.create_vector_name(name, SPARSE_VECTOR, schema.client_sparse_vector_name_config())

    def _scroll_titles(self, name: str, offset: Any, limit: int) -> tuple[list[tuple[str, str | None]], Any]:
        with self._translated(f"read the titles of {name}"):
            records, following = self._client.scroll(name, offset=offset, limit=limit, with_payload=["title"],
                                                     with_vectors=False)
        return [(str(r.id), (r.payload or {}).get("title")) for r in records], following

    def _write_sparse(self, name: str, updates: list[tuple[str, SparseVector]]) -> None:
        points = schema.client_sparse_updates(updates)
        self._retrying(f"write BM25 vectors into {name}",
                       lambda: self._client.update_vectors(name, points=points, wait=True))

    def _save_record(self, record: CollectionRecord) -> None:
        with self._translated(f"update the record of {record.name}"):
            self._client.update_collection(
                record.name, metadata={schema.RECORD_METADATA_KEY: schema.record_to_json(record)})
        self._records[record.name] = record

    def _query(self, name: str, query_plans: Sequence[plans.QueryPlan]) -> list[list[Any]]:
        requests = [schema.client_request(plan, with_params=not self.local) for plan in query_plans]
        size = self.options.query_batch_size  # bounded HTTP bodies: 2000 queries of 512 floats ≈ 10 MB
        results: list[list[Any]] = []
        with self._translated(f"search {name}"):
            for start in range(0, len(requests), size):
                responses = self._client.query_batch_points(name, requests=requests[start:start + size])
                results.extend(response.points for response in responses)
        return results

    def _retrieve_wire(self, name: str, ids: list[str], with_payload: bool, with_vectors: bool) -> list[Any]:
        with self._translated(f"retrieve from {name}"):
            return self._client.retrieve(name, ids, with_payload=with_payload, with_vectors=with_vectors)

    # ---- errors and retries
    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run `call`, retrying transient failures `max_retries` times with exponential backoff."""
        for attempt in range(self.options.max_retries + 1):
            try:
                with self._translated(what, retrying=attempt < self.options.max_retries):
                    return call()
            except _Retry as retry:
                delay = self.options.backoff_s * 2**attempt
                log.warning("%s failed (%s); retry %d/%d in %.1f s", what, retry.reason, attempt + 1,
                            self.options.max_retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt raises or returns")

    @contextlib.contextmanager
    def _translated(self, what: str, retrying: bool = False) -> Iterator[None]:
        """qdrant-client failures as one-line StoreErrors (never carrying the API key); its warnings go
        to the log."""
        try:
            with client_warnings_logged():
                yield
        except (ResponseHandlingException, UnexpectedResponse) as exc:
            reason = _reason(exc)
            if retrying and is_transient(exc):
                raise _Retry(reason) from None
            if isinstance(exc, ResponseHandlingException):
                raise StoreUnreachable(
                    f"cannot reach the Qdrant server at {self.location} ({reason})",
                    "check the URL and that the server is running (e.g. `docker compose up -d`)",
                ) from None
            hint = "check the server's logs"
            if exc.status_code in (401, 403):
                hint = ("the server refused the API key given: check that the environment variable named by "
                        "api_key_env (QDRANT_API_KEY) holds this server's key" if self.with_api_key else
                        "set the API key in the environment variable named by api_key_env (QDRANT_API_KEY)")
            raise StoreError(f"the Qdrant server at {self.location} refused to {what}: {reason}", hint) from None


@contextlib.contextmanager
def client_warnings_logged() -> Iterator[None]:
    """Warnings qdrant-client raises inside the block (UserWarning over http, local-mode notes) are
    logged as warnings of this module instead of printed raw. Not thread-safe (`warnings.catch_warnings`):
    callers serialise their use of one store."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        log.warning("qdrant-client: %s", warning.message)


class _Retry(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnexpectedResponse):
        return f"HTTP {exc.status_code} {exc.reason_phrase}".strip()
    cause = exc.args[0] if exc.args else exc
    return f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
