"""`gcl-vdb serve`: the search API, the search page and the operations endpoints of one collection.

    from gcl_vectordb.serve import ServeConfig, serve
    serve(ServeConfig(collection="gs10m", store="gcl-vdb-store", port=8000))

or, inside another ASGI server: `create_app(open_service(config), config)`. See `app` for the routes,
`batcher` for the micro-batching, `guard` for the API key and limits, `server` for the shutdown.
"""

from gcl_vectordb.serve.app import create_app
from gcl_vectordb.serve.batcher import BatchLimits, MicroBatcher, QueueFull
from gcl_vectordb.serve.server import serve
from gcl_vectordb.serve.service import SearchService, ServeConfig, open_service

__all__ = ["BatchLimits", "MicroBatcher", "QueueFull", "SearchService", "ServeConfig", "create_app", "open_service",
           "serve"]
