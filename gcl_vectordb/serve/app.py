"""The ASGI app: search API, product and image look-ups, the search page, health, metrics, OpenAPI docs.

    app = create_app(open_service(config), config)      # then any ASGI server; `serve(config)` uses uvicorn

Routes (all behind `ServiceGuard`: API key, body limit, metrics):

    POST /search            one query → ranked hits             (503 + Retry-After when the queue is full)
    POST /search/batch      several queries → their hits, in order
    GET  /products/{id}     the stored product
    GET  /images/{id}       the product's own image file (the path comes from the store, never the request)
    GET  /                  the search page (?q=…&mode=…)
    GET  /healthz, /readyz  alive; ready to take queries (503 while shutting down)
    GET  /metrics           Prometheus text format
    GET  /docs, /openapi.json
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pydantic_core
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gcl_vectordb import __version__
from gcl_vectordb.domain import FusionMethod, SearchMode
from gcl_vectordb.errors import ConfigError, GclVdbError, StoreUnreachable
from gcl_vectordb.search.html import search_page
from gcl_vectordb.search.query import QueryHit, TextQuery
from gcl_vectordb.serve import api
from gcl_vectordb.serve.guard import ServiceGuard
from gcl_vectordb.serve.service import QueueFull, SearchService, ServeConfig

PAGE_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; "
               "base-uri 'none'; frame-ancestors 'none'")
"""The search page runs no script: its Content-Security-Policy forbids any, as defence in depth."""
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
PAGE_LIMIT = 24
_ERRORS = {401: "missing or wrong API key", 413: "request body too large", 503: "queue full or shutting down"}


def create_app(service: SearchService, config: ServeConfig) -> FastAPI:
    """The app serving `service`; it closes the service (drain, then the store) when the server stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(service.close, config.drain_timeout_s)

    app = FastAPI(title="gcl-vdb", version=__version__, lifespan=lifespan,
                  summary=f"GCL product search over the collection {service.collection!r}",
                  responses={code: {"model": api.ErrorOut, "description": text} for code, text in _ERRORS.items()})
    app.add_middleware(ServiceGuard, metrics=service.metrics, max_body_bytes=config.max_body_bytes,
                       api_key=config.api_key)
    if config.cors_origins:  # outermost: a browser's preflight carries no key
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "x-api-key", "content-type"])
    retry = {"Retry-After": str(config.retry_after_s)}
    _add_error_handlers(app, retry)
    _add_search_routes(app, service, retry)
    _add_product_routes(app, service)
    _add_operations_routes(app, service)
    return app


def _json(data: api.BaseModel | dict[str, Any]) -> Response:
    body = data.model_dump_json() if isinstance(data, api.BaseModel) else pydantic_core.to_json(data)
    return Response(body, media_type="application/json")


def _add_error_handlers(app: FastAPI, retry: dict[str, str]) -> None:
    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> Response:
        return JSONResponse({"detail": f"busy: {exc}; retry later"}, status_code=503, headers=retry)

    @app.exception_handler(GclVdbError)
    async def user_error(request: Request, exc: GclVdbError) -> Response:
        status = 422 if isinstance(exc, ConfigError) else 503 if isinstance(exc, StoreUnreachable) else 500
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=retry if status == 503 else None)


def _queries(bodies: list[api.SearchBody]) -> list[TextQuery]:
    try:
        return [body.to_query() for body in bodies]
    except ConfigError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": str(exc), "input": None}]) \
            from None


def _add_search_routes(app: FastAPI, service: SearchService, retry: dict[str, str]) -> None:
    @app.post("/search", response_model=api.SearchOut, tags=["search"])
    async def search(body: api.SearchBody, request: Request) -> Response:
        """Embed the query with the collection's model and return the ranked hits."""
        [result] = await service.search(_queries([body]))
        return _json(api.search_response(result, request.scope.get("root_path", "")))

    @app.post("/search/batch", response_model=api.BatchOut, tags=["search"])
    async def search_batch(body: api.BatchBody, request: Request) -> Response:
        """Several searches; results in the order asked. All are admitted or none (503)."""
        results = await service.search(_queries(body.searches))
        root = request.scope.get("root_path", "")
        return _json({"results": [api.search_response(result, root) for result in results]})

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    async def page(q: str = Query("", max_length=api.MAX_QUERY_CHARS), mode: SearchMode = SearchMode.fused,
                   fusion: FusionMethod = FusionMethod.rrf,
                   limit: int = Query(PAGE_LIMIT, ge=1, le=api.MAX_LIMIT)) -> Response:
        """The search page: a query box, a mode switch (with the fusion of the hybrid mode) and the
        results as product cards."""
        result, message, status = None, "", 200
        if q.strip():
            try:
                hybrid = fusion if mode is SearchMode.hybrid else None  # the form always sends a fusion
                [result] = await service.search([TextQuery(q, mode=mode, limit=limit, fusion=hybrid)])
            except QueueFull:
                message, status = "The service is busy; please try again in a moment.", 503
            except ConfigError as exc:
                message, status = str(exc), 422
        html = search_page(service.collection, q, mode, result, _page_image, message, fusion)
        headers = {"Content-Security-Policy": PAGE_POLICY, **(retry if status == 503 else {})}
        return HTMLResponse(html, status_code=status, headers=headers)


def _page_image(hit: QueryHit) -> str | None:
    return f"images/{quote(hit.product_id, safe='')}" if hit.image else None  # relative: works under a prefix


def _add_product_routes(app: FastAPI, service: SearchService) -> None:
    @app.get("/products/{product_id}", response_model=api.ProductOut, responses={404: {"model": api.ErrorOut}},
             tags=["products"])
    def product(product_id: str, request: Request) -> Response:
        """The stored product: title, corpus, image URL and the whole payload."""
        found = service.product(product_id)
        if found is None:
            raise HTTPException(404, f"no product {product_id!r} in {service.collection}")
        return _json(api.product_response(found, request.scope.get("root_path", "")))

    @app.get("/images/{product_id}", response_class=FileResponse, responses={404: {"model": api.ErrorOut}},
             tags=["products"])
    def image(product_id: str) -> Response:
        """The product's image file, as ingested: only a file inside the collection's images folder. A
        product whose image exists only inside a parquet file gets 404 (the store keeps no image bytes)."""
        found = service.product(product_id)
        file = service.image_file(found) if found is not None else None
        if file is None:
            raise HTTPException(404, f"no image file for product {product_id!r}")
        path, media_type = file
        return FileResponse(path, media_type=media_type, headers={"Content-Security-Policy": IMAGE_POLICY,
                                                                  "Cache-Control": "public, max-age=3600"})


def _add_operations_routes(app: FastAPI, service: SearchService) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        """Ready to take queries: the collection is open and the service is not shutting down."""
        if not service.ready:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        limits = service.batcher.limits
        return JSONResponse({"status": "ready", "collection": service.collection, "products": service.size,
                             "model": service.record.model_ref, "queue_depth": service.batcher.depth(),
                             "batching": {"max_batch": limits.max_batch, "max_wait_ms": limits.max_wait_s * 1000,
                                          "queue_size": limits.queue_size}})

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics: request counts and latencies, batch sizes, queue depth, rejections."""
        return Response(await run_in_threadpool(service.metrics.render), media_type=service.metrics.content_type)
