"""Bulk upserts to a Qdrant server over gRPC: protobuf requests, several in flight, each retried.

Over REST a batch of 256 products with three 512-d vectors is ≈ 8 MB of JSON; as one protobuf
`UpsertPoints` request it is ≈ 1.5 MB and several times cheaper to build (`schema.grpc_upsert`;
benchmarks/server_load.py measures both). Requests go to Qdrant's Points service
(`/qdrant.Points/Upsert`, wait=true) on the server's gRPC port, `parallel` at a time as concurrent
streams of one HTTP/2 connection, while this thread builds the next request. A request that fails with
a transient status (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL) is sent again
after `backoff_s · 2^attempt`, at most `max_retries` times: safe, because point ids derive from product
ids and upserting the same points twice changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import grpc

from gcl_vectordb.errors import StoreError, StoreUnreachable
from gcl_vectordb.store import schema
from gcl_vectordb.store.records import PointColumns

log = logging.getLogger(__name__)

TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL,
})
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
DENIED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


@dataclass(frozen=True)
class GrpcUploader:
    """Sends `PointColumns` batches through `points()`, a Points service stub (qdrant-client's
    `grpc_points`, or a stub of any channel), to `target` (host:port, for messages)."""

    points: Callable[[], Any]
    target: str
    parallel: int = 4
    max_retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 60.0

    def upsert(self, collection: str, batches: Iterable[PointColumns]) -> int:
        """Upsert every batch; returns when the server acknowledged all of them (or raises StoreError).

        On a failure the requests not yet sent are dropped and the error raised once those in flight end;
        batches already acknowledged stay written (a re-run upserts them again, harmlessly).
        """
        stub = self.points()  # the channel is made once, here, not by racing worker threads
        written = 0
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="qdrant-upsert") as pool:
            pending: set[Future[int]] = set()
            try:
                for batch in batches:
                    request = schema.grpc_upsert(collection, batch)
                    pending.add(pool.submit(self._send, stub, request, collection))
                    if len(pending) >= self.parallel:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        written += sum(future.result() for future in done)
                done, pending = wait(pending)
                written += sum(future.result() for future in done)
            finally:
                for future in pending:
                    future.cancel()
        return written

    def _send(self, stub: Any, request: Any, collection: str) -> int:
        what = f"upsert {len(request.points)} points into {collection}"
        for attempt in range(self.max_retries + 1):
            try:
                stub.Upsert(request, timeout=self.timeout_s)
                return len(request.points)
            except grpc.RpcError as exc:
                code = exc.code()
                if code not in TRANSIENT or attempt == self.max_retries:
                    raise self._error(what, code, exc.details()) from None
                delay = self.backoff_s * 2**attempt
                log.warning("%s over gRPC failed (%s); retry %d/%d in %.1f s", what, code.name, attempt + 1,
                            self.max_retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt raises or returns")

    def _error(self, what: str, code: grpc.StatusCode, details: str | None) -> StoreError:
        reason = f"{code.name}: {details}" if details else code.name
        if code in UNREACHABLE:
            return StoreUnreachable(
                f"cannot reach the Qdrant server's gRPC port at {self.target} ({reason})",
                "publish the server's gRPC port on its REST port + 1 (6334 in docker-compose.yml), or open "
                "the store with open_store(url, grpc_port=PORT) (0: upload over REST)",
            )
        hint = ("set the API key in the environment variable named by api_key_env (QDRANT_API_KEY)"
                if code in DENIED else "check the server's logs")
        return StoreError(f"the Qdrant server at {self.target} refused to {what}: {reason}", hint)
