"""Client-side cost of a server bulk load: REST JSON (before) against gRPC protobuf (now), per product.

    python benchmarks/server_load.py            # 40 batches of 256 products, 7 interleaved repeats
    python benchmarks/server_load.py --quick    # 4 batches, 2 repeats: proves the script works

Each batch is 256 products with three unit 512-d float32 vectors (image, title, fused), the title's BM25
sparse vector (computed before timing: both paths send the same one) and the payload gcl-vdb stores
(product_id, title, image path, corpus). Per batch, CPU seconds of this thread
(`time.thread_time`: no server runs here, and the CPU time of other processes does not count) and bytes:
- rest-json: what the server path did before, one batch of `ServerStore._write` over REST:
  `schema.wire_rows` → `schema.client_points` → `QdrantClient.upsert(wait=True)` through qdrant-client's
  own REST code down to the HTTP request, which an `httpx.MockTransport` takes (its body is the bytes
  sent) and answers like a server, without a network;
- grpc-client-conversion: qdrant-client's own gRPC path (`prefer_grpc=True`): the same PointStructs
  converted by `RestToGrpc.convert_point_struct` into an `UpsertPoints` request, serialised;
- grpc (gcl-vdb now): `schema.grpc_upsert` (vectors parsed from their packed-float wire form) and
  `SerializeToString()`, which is what the gRPC stub sends.
The gRPC request is checked against the REST points (same ids, payloads, vectors) before timing.
Ratios are against rest-json, by median CPU seconds per batch; the goal (issue 13) is ≥ 3×.
Writes benchmarks/results/server_load.{json,md} (`.quick.` for other sizes, not committed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _results import write_results  # noqa: E402
from qdrant_client import QdrantClient  # noqa: E402
from qdrant_client import grpc as qgrpc  # noqa: E402
from qdrant_client.conversions.conversion import GrpcToRest, RestToGrpc  # noqa: E402

from gcl_vectordb.store import product_payload, schema  # noqa: E402
from gcl_vectordb.store.bm25 import Bm25Settings, bm25_document_vectors  # noqa: E402
from gcl_vectordb.store.records import PointColumns  # noqa: E402

BATCH = 256
DIM = 512
FULL = {"batches": 40, "repeats": 7}
QUICK = {"batches": 4, "repeats": 2}
COLLECTION = "gs10m"
OK = {"result": {"operation_id": 1, "status": "completed"}, "status": "ok", "time": 0.0}


def make_batches(count: int, seed: int = 0) -> list[PointColumns]:
    """`count` batches of BATCH products: unit vectors, GS-like ids and titles, both corpora."""
    rng = np.random.default_rng(seed)
    words = ["women's", "summer", "dress", "cotton", "slim", "fit", "running", "shoes", "leather", "wallet",
             "wireless", "headphones", "stainless", "steel", "water", "bottle", "kids", "jacket", "blue", "large"]
    batches = []
    for b in range(count):
        vectors = {}
        for name in ("image", "title", "fused"):
            raw = rng.normal(size=(BATCH, DIM)).astype(np.float32)
            vectors[name] = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        ids = [f"B0{b:03d}{i:05d}X" for i in range(BATCH)]
        payloads = [product_payload(pid, " ".join(rng.choice(words, size=12)), f"images/{pid}.jpg", 1 + i % 2)
                    for i, pid in enumerate(ids)]
        sparse = bm25_document_vectors([p["title"] for p in payloads], Bm25Settings())
        batches.append(PointColumns(ids, vectors, {k: np.ones(BATCH, dtype=bool) for k in vectors}, payloads, sparse))
    return batches


class RestClient:
    """qdrant-client over REST whose HTTP requests end in a MockTransport that records the body size."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        transport = httpx.MockTransport(self._answer)
        self.client = QdrantClient(url="http://127.0.0.1:6333", check_compatibility=False, transport=transport)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(len(request.content))
        return httpx.Response(200, json=OK)

    def upsert(self, batch: PointColumns) -> int:
        points = schema.client_points(schema.wire_rows(batch))
        self.client.upsert(COLLECTION, points=points, wait=True)
        return self.sent[-1]


def grpc_client_conversion(batch: PointColumns) -> int:
    points = schema.client_points(schema.wire_rows(batch))
    request = qgrpc.UpsertPoints(collection_name=COLLECTION, wait=True,
                                 points=[RestToGrpc.convert_point_struct(p) for p in points])
    return len(request.SerializeToString())


def grpc_gcl_vdb(batch: PointColumns) -> int:
    return len(schema.grpc_upsert(COLLECTION, batch).SerializeToString())


def check_same_points(batch: PointColumns) -> None:
    """The gRPC request, parsed back, holds exactly the points the REST path sends."""
    request = qgrpc.UpsertPoints.FromString(schema.grpc_upsert(COLLECTION, batch).SerializeToString())
    decoded = [GrpcToRest.convert_point_struct(p) for p in request.points]
    rest = schema.client_points(schema.wire_rows(batch))
    assert [str(p.id) for p in decoded] == [str(p.id) for p in rest]
    assert [p.payload for p in decoded] == [p.payload for p in rest]
    assert [p.vector for p in decoded] == [p.vector for p in rest]


def measure(paths: dict[str, Callable[[PointColumns], int]], batches: list[PointColumns],
            repeats: int) -> dict[str, dict[str, float]]:
    """Per path: CPU seconds of each batch (thread time), interleaved path by path; bytes per batch."""
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    sizes: dict[str, list[int]] = {name: [] for name in paths}
    for path in paths.values():  # warm-up: imports, caches, pydantic's lazily built validators
        path(batches[0])
    for _ in range(repeats):
        for batch in batches:
            for name, path in paths.items():
                start = time.thread_time()
                sizes[name].append(path(batch))
                cpu[name].append(time.thread_time() - start)
    return {name: {"cpu_s_per_batch": statistics.median(cpu[name]), "cpu_s_per_batch_mean": statistics.fmean(cpu[name]),
                   "bytes_per_batch": statistics.fmean(sizes[name])} for name in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 batches, 2 repeats")
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    size = {**(QUICK if args.quick else FULL), **{k: v for k, v in vars(args).items()
                                                  if k in ("batches", "repeats") and v is not None}}
    batches = make_batches(size["batches"])
    check_same_points(batches[0])
    rest = RestClient()
    paths = {"rest-json": rest.upsert, "grpc-client-conversion": grpc_client_conversion, "grpc": grpc_gcl_vdb}
    figures = measure(paths, batches, size["repeats"])
    base = figures["rest-json"]
    rows = {}
    for name, f in figures.items():
        rows[name] = {
            "cpu_us_per_product": f["cpu_s_per_batch"] / BATCH * 1e6,
            "bytes_per_product": f["bytes_per_batch"] / BATCH,
            "products_per_cpu_s": BATCH / f["cpu_s_per_batch"],
            "cpu_ratio_vs_rest": base["cpu_s_per_batch"] / f["cpu_s_per_batch"],
            "bytes_ratio_vs_rest": base["bytes_per_batch"] / f["bytes_per_batch"],
            "cpu_hours_for_10m": f["cpu_s_per_batch"] / BATCH * 10_000_000 / 3600,
            "gb_for_10m": f["bytes_per_batch"] / BATCH * 10_000_000 / 1e9,
        }
    result = {
        "batch_products": BATCH, "dim": DIM, "vectors": 3, **size,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "paths": rows, "goal": "grpc at least 3x cheaper than rest-json (client CPU per product)",
        "goal_met": rows["grpc"]["cpu_ratio_vs_rest"] >= 3.0,
    }
    lines = [
        f"# server bulk load, client side: {BATCH}-product batches, 3 × {DIM}-d float32 + BM25 sparse + payload",
        "",
        f"{size['batches']} batches × {size['repeats']} interleaved repeats; CPU: median thread time per batch "
        f"(no server; REST through qdrant-client down to the HTTP body). Load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs.",
        "",
        "| path | CPU µs / product | bytes / product | products / CPU s | CPU vs REST | bytes vs REST "
        "| 10M products: CPU h, GB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['cpu_us_per_product']:.1f} | {r['bytes_per_product']:,.0f} | "
                     f"{r['products_per_cpu_s']:,.0f} | {r['cpu_ratio_vs_rest']:.2f}× | {r['bytes_ratio_vs_rest']:.2f}× "
                     f"| {r['cpu_hours_for_10m']:.2f} h, {r['gb_for_10m']:.0f} GB |")
    lines += ["", f"Goal (≥ 3× cheaper than REST JSON per product): {'met' if result['goal_met'] else 'NOT met'} "
              f"({rows['grpc']['cpu_ratio_vs_rest']:.1f}×).", ""]
    write_results("server_load", result, "\n".join(lines), full_size=size == FULL)


if __name__ == "__main__":
    main()
