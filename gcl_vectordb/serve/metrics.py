"""The service's Prometheus metrics, in a registry of its own (one per app, so tests can build many).

    gcl_vdb_http_requests_total{method, route, status}   requests answered
    gcl_vdb_http_request_seconds{route}                  latency histogram, request start → response sent
    gcl_vdb_embedding_batch_size                         queries per model call (histogram)
    gcl_vdb_batch_seconds                                embed + search time of one batch (histogram)
    gcl_vdb_queue_depth                                  queries waiting or being embedded now
    gcl_vdb_rejected_total                               queries refused because the queue was full

`route` is the route's template (`/products/{product_id}`), never the raw path, so a client cannot
create a time series per product id; unmatched paths count as `<unmatched>`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Counters, histograms and the queue gauge of one app; `render()` is the `/metrics` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("gcl_vdb_http_requests", "HTTP requests answered.", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("gcl_vdb_http_request_seconds", "HTTP request latency.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("gcl_vdb_embedding_batch_size", "Queries embedded and searched per model call.",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("gcl_vdb_batch_seconds", "Embed + search time of one batch.",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("gcl_vdb_queue_depth", "Queries waiting or being processed.",
                                 registry=self.registry)
        self.rejected = Counter("gcl_vdb_rejected", "Queries refused with 503 because the queue was full.",
                                registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
