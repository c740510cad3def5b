"""`gcl-vdb serve --collection gs10m`: the collection's search API and search page over HTTP."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from gcl_vectordb.cli import output
from gcl_vectordb.cli.app import command_app
from gcl_vectordb.cli.options import CollectionOption, JsonOption, QdrantOption
from gcl_vectordb.serve import BatchLimits, ServeConfig, serve
from gcl_vectordb.settings import resolve_settings

app = command_app()

DEFAULT_LIMITS = BatchLimits()
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServeConfig)}  # the library's, shown by --help
API_KEY_ENV = "GCL_VDB_API_KEY"


@app.command("serve")
def serve_command(
    collection: CollectionOption = None,
    qdrant: QdrantOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes the service to "
                                                     "the network (set --api-key then).")] = DEFAULTS["host"],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")
    ] = DEFAULTS["port"],
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar=API_KEY_ENV, show_default=False, show_envvar=True,
                                 help="Require this key on every request (X-API-Key or Authorization: Bearer; "
                                      "the page asks for it as a password). Prefer the environment variable: a "
                                      "flag shows in the process list.")
    ] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=256,
                                           help="Most queries embedded and searched together.")
    ] = DEFAULT_LIMITS.max_batch,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, max=1000,
                                               help="How long a lone query waits for company before it "
                                                    "runs (0: never; batches still form under load).")
    ] = DEFAULT_LIMITS.max_wait_s * 1000,
    queue_size: Annotated[int, typer.Option("--queue-size", min=1, help="Most queries waiting; beyond it "
                                                                        "requests get 503 + Retry-After.")
    ] = DEFAULT_LIMITS.queue_size,
    max_body_kb: Annotated[int, typer.Option("--max-body-kb", min=1, help="Largest request body.")
    ] = DEFAULTS["max_body_bytes"] // 1024,
    max_connections: Annotated[int, typer.Option("--max-connections", min=1,
                                                 help="Open connections beyond this get 503.")
    ] = DEFAULTS["max_connections"],
    cors_origins: Annotated[
        list[str] | None, typer.Option("--cors-origin", metavar="URL", help="Let pages from this origin call "
                                                                            "the API (repeatable; default: none).")
    ] = None,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0.1, help="Seconds a shutdown waits "
                                                                                  "for requests in flight.")
    ] = DEFAULTS["drain_timeout_s"],
    access_log: Annotated[bool, typer.Option("--access-log", help="Log one line per request (/metrics counts "
                                                                  "them either way).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Serve a collection over HTTP: POST /search, /search/batch, GET /products/ID, /images/ID, the search
    page at /, /healthz, /readyz, /metrics and the OpenAPI docs at /docs.

    One process serves the collection: the embedded store admits one process per collection, so there are
    no worker processes; concurrent queries are embedded and searched together in batches instead (a
    Qdrant server URL works the same way). SIGTERM or Ctrl-C stops taking connections, finishes the
    requests in flight and closes the store.

    Example: [bold]gcl-vdb serve --collection gs10m --port 8000[/bold], then
    [bold]curl -s localhost:8000/search -H 'content-type: application/json' -d '{"query": "red summer dress"}'[/bold]
    """
    settings = resolve_settings(store=qdrant, collection=collection)
    config = ServeConfig(
        collection=settings.collection, store=settings.store, store_api_key=settings.api_key, api_key=api_key,
        host=host, port=port, batching=BatchLimits(max_batch=max_batch, max_wait_s=max_wait_ms / 1000,
                                                   queue_size=queue_size),
        max_body_bytes=max_body_kb * 1024, max_connections=max_connections, cors_origins=tuple(cors_origins or ()),
        drain_timeout_s=drain_timeout, access_log=access_log,
    )
    output.note(f"loading collection {config.collection} from {config.store} …")

    def listening(url: str) -> None:
        if json_output:  # where it listens, for scripts (with --port 0 the port is only known now)
            output.print_json({"url": url, "collection": config.collection, "store": config.store})
        output.note(f"serving {config.collection} on {url} (page {url}/, API docs {url}/docs"
                    f"{', API key required' if api_key else ''}); Ctrl-C or SIGTERM stops")

    serve(config, on_listening=listening)
    output.note("stopped")
