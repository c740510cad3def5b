"""The query API, the HTML results page in a real browser, and the cold start of `gcl-vdb query`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.encoders import load_encoder
from gcl_vectordb.errors import ConfigError, ModelMismatch, StoreError
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.search import QueryConfig, query, results_page, search_products, write_results_page
from gcl_vectordb.store import open_store
from tests.browser import browse, chromium_or_skip
from tests.ingest_fixtures import HOSTILE


def test_search_products_embeds_with_the_collection_model(ingested: Path, micro_bundle: Path) -> None:
    encoder = load_encoder(str(micro_bundle))
    with open_store(ingested) as store:
        result = search_products(store, "gs", "green handbag", limit=5, exact=True)
        given = search_products(store, "gs", "green handbag", limit=5, exact=True, encoder=encoder)
        by_vector = store.search("gs", _request(encoder.encode_texts(["green handbag"])[0]))
    assert result.model_ref == str(micro_bundle) and result.dim == 32 and result.mode == "fused"
    assert [h.product_id for h in result.hits] == [h.product_id for h in given.hits] == [h.product_id for h in by_vector]
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert all(h.title == h.payload["title"] and h.corpus in (1, 2) for h in result.hits)
    assert set(result.seconds) == {"model", "embed", "search", "total"}


def _request(vector: np.ndarray):
    from gcl_vectordb.store import SearchRequest

    return SearchRequest(vector, limit=5, exact=True)


def test_query_errors(ingested: Path, tiny_bundle: Path) -> None:
    with open_store(ingested) as store:
        with pytest.raises(ConfigError, match="the query text is empty"):
            search_products(store, "gs", "  ")
        with pytest.raises(ModelMismatch, match="embeds in 128 dimensions but collection 'gs' holds 32-dim"):
            search_products(store, "gs", "red", encoder=load_encoder(str(tiny_bundle)))
    with pytest.raises(ConfigError, match="add --mode weighted"):
        QueryConfig(text="red", collection="gs", store=str(ingested), weights={"image": 1.0})
    assert len(query(QueryConfig(text="red", collection="gs", store=str(ingested), limit=3)).hits) == 3


def test_results_page_escapes_and_embeds_thumbnails(hostile_store: Path, tmp_path: Path) -> None:
    result = query(QueryConfig(text=HOSTILE, collection="gs", store=str(hostile_store), mode="title", limit=6))
    assert result.hits[0].title == HOSTILE
    page = results_page(result)
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count('<article class="card"') == 6 and page.count('src="data:image/jpeg;base64,') == 6
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing to fetch

    # images that are gone give placeholders instead of a broken page
    moved = dataclasses.replace(result, images_dir=str(tmp_path))
    assert results_page(moved).count('<div class="noimage">no image</div>') == 6


def test_results_page_renders_in_headless_chromium(hostile_store: Path, tmp_path: Path) -> None:
    from PIL import Image

    chromium = chromium_or_skip()
    limit = 8
    result = query(QueryConfig(text=HOSTILE, collection="gs", store=str(hostile_store), mode="title", limit=limit))
    page = write_results_page(result, tmp_path / "out" / "results.html")

    dom = browse(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<article class="card"', dom.stdout)) == limit
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', dom.stdout)) == limit
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout and "<script>alert" not in dom.stdout

    shot = tmp_path / "shot.png"
    rendered = browse(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900",
                       page.as_uri())
    assert rendered.returncode == 0 and shot.is_file(), rendered.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500  # drawn product photos, not a blank page


COLD = textwrap.dedent("""
    import runpy, sys, time
    started = time.perf_counter()
    sys.argv = ["gcl-vdb", "query", "red summer dress", "--collection", "gs", "--qdrant", sys.argv[1], "--json"]
    try:
        runpy.run_module("gcl_vectordb", run_name="__main__")
    except SystemExit as exc:
        assert not exc.code, exc.code
    heavy = sorted(m for m in ("torch", "pandas", "open_clip", "qdrant_client") if m in sys.modules)
    print("HEAVY", heavy, "SECONDS", round(time.perf_counter() - started, 3), file=sys.stderr)
""")


def test_cold_query_imports_neither_torch_nor_pandas(ingested: Path, subprocess_env: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-c", COLD, str(ingested)], env=subprocess_env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(json.loads(run.stdout)["hits"]) == 10
    assert "HEAVY [] SECONDS" in run.stderr, run.stderr[-2000:]


def test_queries_load_only_the_text_tower(micro_bundle: Path) -> None:
    from gcl_vectordb.errors import ModelError
    from gcl_vectordb.search import cached_encoder

    texts = ["red summer dress", "black leather boots"]
    text_only = cached_encoder(str(micro_bundle))
    assert text_only._image is None
    np.testing.assert_array_equal(text_only.encode_texts(texts), load_encoder(str(micro_bundle)).encode_texts(texts))
    with pytest.raises(ModelError, match="loaded for texts only"):
        text_only.encode_pixels(np.zeros((1, 3, 32, 32), dtype=np.float32))


# ---------------------------------------------------------------- keyword and hybrid modes


def test_bm25_loads_no_model_and_hybrid_fuses_in_the_engine(
    ingested: Path, micro_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gcl_vectordb.store import SearchRequest

    query_module = importlib.import_module("gcl_vectordb.search.query")  # the package exports a `query` function
    encoder = load_encoder(str(micro_bundle))
    with open_store(ingested) as store:
        monkeypatch.setattr(query_module, "cached_encoder", lambda *a, **k: pytest.fail("bm25 loaded a model"))
        keyword = search_products(store, "gs", "green handbag", mode="bm25", limit=5)
        direct = store.search("gs", SearchRequest(None, mode="bm25", text="green handbag", limit=5))
        monkeypatch.undo()
        hybrid = search_products(store, "gs", "green handbag", mode="hybrid", fusion="dbsf", limit=5, exact=True)
        vector = encoder.encode_texts(["green handbag"])[0]
        engine = store.search("gs", SearchRequest(vector, mode="hybrid", text="green handbag", fusion="dbsf", limit=5,
                                                  exact=True))
    assert keyword.hits and [h.product_id for h in keyword.hits] == [h.product_id for h in direct]
    assert keyword.seconds["model"] == 0.0
    assert all("green" in h.title.lower() or "handbag" in h.title.lower() for h in keyword.hits)
    assert keyword.fusion is None and keyword.describe_mode() == "bm25"
    assert [h.product_id for h in hybrid.hits] == [h.product_id for h in engine]
    assert hybrid.fusion == "dbsf" and hybrid.describe_mode() == "hybrid (dbsf)"
    page = results_page(hybrid)
    assert "mode hybrid (dbsf)" in page
    assert "model none (keyword search)" in results_page(keyword)


def test_keyword_modes_on_a_collection_made_before_them(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    store_dir = tmp_path / "store"
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=str(store_dir),
                                workers=0))
    record_file = store_dir / "gs" / "collection.json"
    data = json.loads(record_file.read_text())
    del data["bm25"]
    record_file.write_text(json.dumps(data))
    with open_store(store_dir) as store:
        assert len(search_products(store, "gs", "red", limit=3).hits) == 3  # the dense modes still work
        for mode in ("bm25", "hybrid"):
            with pytest.raises(StoreError, match="no BM25 sparse vector.*gcl-vdb collections add-bm25 gs"):
                search_products(store, "gs", "red", mode=mode)
    with pytest.raises(ConfigError, match="add --mode hybrid"):
        QueryConfig(text="red", collection="gs", store=str(store_dir), mode="bm25", fusion="dbsf")


def test_query_cli_keyword_modes(ingested: Path) -> None:
    from typer.testing import CliRunner

    from gcl_vectordb.cli.app import app

    cli = CliRunner()
    result = cli.invoke(app, ["query", "green handbag", "--collection", "gs", "--qdrant", str(ingested),
                              "--mode", "hybrid", "--fusion", "dbsf", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "mode hybrid (dbsf)" in " ".join(result.output.split())
    result = cli.invoke(app, ["query", "green handbag", "--collection", "gs", "--qdrant", str(ingested),
                              "--mode", "bm25", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["mode"] == "bm25"
    result = cli.invoke(app, ["query", "red", "--collection", "gs", "--qdrant", str(ingested), "--fusion", "rrf"])
    assert result.exit_code == 2 and "--mode hybrid" in result.output
