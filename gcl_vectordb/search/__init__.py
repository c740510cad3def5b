"""Search: text queries embedded with the collection's own model, and a results page.

    from gcl_vectordb.search import search_products, write_results_page
    with open_store("gcl-vdb-store") as store:
        result = search_products(store, "gs10m", "red summer dress", limit=10)
    write_results_page(result, Path("results.html"))
"""

from gcl_vectordb.search.html import results_page, write_results_page
from gcl_vectordb.search.query import (
    QueryConfig,
    QueryHit,
    QueryResult,
    TextQuery,
    cached_encoder,
    query,
    search_products,
    search_products_batch,
)

__all__ = [
    "QueryConfig", "QueryHit", "QueryResult", "TextQuery", "cached_encoder", "query", "results_page",
    "search_products", "search_products_batch", "write_results_page",
]
