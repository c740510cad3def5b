"""Loopback stand-ins for a Qdrant server, started in-process by tests (no Qdrant binary exists here).

`FakeRest`: the few REST endpoints `ServerStore.connect` and a gcl-vdb collection's lookup use (the
root with the server's version, the collection list, one collection's existence and info), or 401.
`FakePoints`: Qdrant's gRPC Points service with a real `Upsert`: it decodes each request with
qdrant-client's own converter and stores the points in a qdrant-client local-mode `sink`, so that a test
can search what went over the wire. It records every call's metadata, can answer the next calls with
injected failure codes, and can hold the first `hold` calls until that many are in flight at once.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from qdrant_client import QdrantClient
from qdrant_client.conversions.conversion import GrpcToRest
from qdrant_client.grpc import points_pb2, points_service_pb2_grpc

SERVER_VERSION = "1.20.0"


class FakeRest(http.server.BaseHTTPRequestHandler):
    """GET / (version), /collections, /collections/NAME/exists, /collections/NAME; or `status` for all."""

    seen_keys: list[str | None] = []
    status = 200
    version = SERVER_VERSION
    collections: dict[str, dict[str, Any]] = {}  # name → CollectionInfo as JSON

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen_keys.append(self.headers.get("api-key"))
        if self.status != 200:
            return self._answer(self.status, {"status": {"error": "Unauthorized"}, "time": 0.0})
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if not parts:
            return self._answer(200, {"title": "qdrant - vector search engine", "version": self.version})
        if parts == ["collections"]:
            return self._ok({"collections": [{"name": name} for name in self.collections]})
        if len(parts) == 3 and parts[2] == "exists":
            return self._ok({"exists": parts[1] in self.collections})
        if len(parts) == 2 and parts[1] in self.collections:
            return self._ok(self.collections[parts[1]])
        return self._answer(404, {"status": {"error": "Not found"}, "time": 0.0})

    def _ok(self, result: Any) -> None:
        self._answer(200, {"result": result, "status": "ok", "time": 0.0})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def fake_rest(**attributes: Any) -> Iterator[tuple[str, type[FakeRest]]]:
    """A FakeRest on a free loopback port: (its URL, its handler class, whose attributes tests set)."""
    handler = type("Handler", (FakeRest,), {"seen_keys": [], "collections": {}, **attributes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def collection_info_json(client: QdrantClient, name: str) -> dict[str, Any]:
    """What a server answers for GET /collections/NAME, taken from a local-mode collection."""
    return client.get_collection(name).model_dump(mode="json", exclude_none=True)


class FakePoints(points_service_pb2_grpc.PointsServicer):
    def __init__(self, sink: QdrantClient, hold: int = 0) -> None:
        self.sink = sink
        self.metadata: list[dict[str, str]] = []
        self.failures: list[grpc.StatusCode] = []
        self.sizes: list[int] = []
        self._hold = threading.Barrier(hold) if hold else None
        self._lock = threading.Lock()

    def Upsert(self, request: points_pb2.UpsertPoints, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            self.metadata.append(dict(context.invocation_metadata()))
            call = len(self.metadata)
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            context.abort(failure, "injected failure")
        if self._hold is not None and call <= self._hold.parties:
            try:  # passes only once `parties` requests are in flight together
                self._hold.wait(timeout=30)
            except threading.BrokenBarrierError:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "requests did not arrive in parallel")
        points = [GrpcToRest.convert_point_struct(p) for p in request.points]
        with self._lock:
            self.sizes.append(len(points))
            self.sink.upsert(request.collection_name, points=points, wait=True)
        return points_pb2.PointsOperationResponse(
            result=points_pb2.UpdateResult(operation_id=call, status=points_pb2.UpdateStatus.Completed)
        )


@contextmanager
def fake_points_server(sink: QdrantClient, hold: int = 0) -> Iterator[tuple[int, FakePoints]]:
    """A gRPC server with FakePoints on a free loopback port: (the port, the servicer)."""
    servicer = FakePoints(sink, hold)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    points_service_pb2_grpc.add_PointsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None)
