"""One contract for both store backends: the embedded engine and qdrant-client (local mode).

Every search mode is checked against a numpy brute force on small random data (exact search), the
keyword modes against an independent BM25 (`tests/bm25_reference.py`), and the two backends must agree
with each other. The test titles have pairwise different token counts, so that no two BM25 scores tie
and rank-based fusion has one right answer. The read-only tests run on every storage preset too: with an
HNSW graph and quantized copies really built (embedded, `optimize()` with tiny thresholds), exact search
must still equal the brute force over the stored originals (float16-rounded where the storage says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.errors import CollectionNotFound, ConfigError, ModelMismatch, StoreError
from gcl_vectordb.store import (
    CollectionRecord,
    EmbeddedStore,
    Hit,
    PointRecord,
    SearchRequest,
    VectorStore,
    open_store,
    product_payload,
)
from gcl_vectordb.store.bm25 import Bm25Settings
from gcl_vectordb.store.plans import RRF_DEPTH_FACTOR, RRF_MIN_DEPTH
from gcl_vectordb.store.storage import Datatype, StorageOptions
from tests.bm25_reference import bm25_scores, tokens

DIM = 16
N = 240
NAME = "products"
WEIGHTS = FieldWeights(image=0.7, title=0.3)
WORDS = ("red blue green leather cotton shoe shoes running run bag dress nike vela summer striped plain wool "
         "jacket boots sneaker the for with and 42 xl").split()


@dataclass
class Corpus:
    """Unit vectors per field `(N, DIM)`, which products have them `(N,)`, and payload columns."""

    ids: list[str]
    vectors: dict[str, np.ndarray]
    has: dict[str, np.ndarray]
    corpus: np.ndarray
    brand: np.ndarray
    titles: list[str]
    half: frozenset[str] = frozenset()  # fields stored as float16: the engine rounds vectors and queries

    def points(self) -> list[PointRecord]:
        return [
            PointRecord(
                pid,
                {f: self.vectors[f][i] for f in self.vectors if self.has[f][i]},
                product_payload(pid, self.titles[i], f"images/{pid}.jpg", int(self.corpus[i]),
                                {"brand": str(self.brand[i])}),
            )
            for i, pid in enumerate(self.ids)
        ]


def make_titles(n: int, rng: np.random.Generator) -> list[str]:
    """Titles of 1–5 words (stop words, stems, numbers among them) padded to 8 + i tokens, so every
    title has its own length; every 11th is empty and every 13th holds stop words only (no BM25 vector)."""
    titles = []
    for i in range(n):
        core = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6))))
        titles.append("" if i % 11 == 0 else "the and of" if i % 13 == 0
                      else core.title() + ", pad" * (8 + i - len(tokens(core))))
    return titles


def make_query(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))


def make_corpus(seed: int = 0, n: int = N, dim: int = DIM) -> Corpus:
    rng = np.random.default_rng(seed)
    vectors = {}
    for name in ("image", "title", "fused"):
        raw = rng.normal(size=(n, dim)).astype(np.float32)
        vectors[name] = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    index = np.arange(n)
    has = {"image": index % 5 != 0, "title": index % 7 != 0, "fused": np.ones(n, dtype=bool)}
    return Corpus([f"p{i:04d}" for i in range(n)], vectors, has, 1 + index % 2,
                  np.array(["acme", "bolt", "corex"])[index % 3], make_titles(n, rng))


def make_record(name: str = NAME, dim: int = DIM, storage: StorageOptions | None = None) -> CollectionRecord:
    return CollectionRecord(name, model_ref="tiny-clip@test", dim=dim, field_weights=WEIGHTS,
                            dataset_root="/data/gs", ingest={"batch_size": 64}, storage=storage or StorageOptions())


def as_stored(corpus: Corpus, storage: StorageOptions) -> Corpus:
    """The corpus as the engine holds it: float16 vectors rounded to float16 (then read as float32)."""
    half = frozenset(f for f in corpus.vectors if storage.vectors[f].datatype is Datatype.float16)
    vectors = {f: _half(v) if f in half else v for f, v in corpus.vectors.items()}
    return replace(corpus, vectors=vectors, half=half)


def _half(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float16).astype(array.dtype)


TINY_INDEX = {"indexing_threshold_kb": 1, "full_scan_threshold_kb": 1}
"""Embedded options that make `optimize()` build HNSW graphs and quantized copies on a few hundred points."""


@pytest.fixture(params=["embedded", "server"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "store") if request.param == "embedded" else ":memory:"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture
def loaded(location: str, corpus: Corpus):
    with open_store(location) as store:
        store.create_collection(make_record())
        store.upsert(NAME, corpus.points())
        yield store


SEARCHABLE = ["embedded", "server", "embedded-int8-disk", "embedded-binary-disk", "embedded-float16",
              "server-int8-disk"]


@pytest.fixture(scope="module", params=SEARCHABLE)
def searchable_storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus: Corpus):
    """A loaded store shared by the read-only tests of a module (per backend and storage preset), and the
    corpus as it stores it. Embedded quantized collections are optimized: their quantized copies exist."""
    backend, _, preset = request.param.partition("-")
    storage = StorageOptions.preset(preset or "ram")
    root = tmp_path_factory.mktemp(request.param)
    location = str(root / "store") if backend == "embedded" else f"local:{root / 'qdrant'}"
    with open_store(location, **(TINY_INDEX if backend == "embedded" and preset else {})) as store:
        store.create_collection(make_record(storage=storage))
        store.upsert(NAME, corpus.points())
        if backend == "embedded" and preset:
            store.optimize(NAME)
            assert store.indexed_vectors(NAME) > 0
        yield store, as_stored(corpus, storage)


@pytest.fixture
def searchable(searchable_storage) -> VectorStore:
    return searchable_storage[0]


@pytest.fixture
def stored(searchable_storage) -> Corpus:
    return searchable_storage[1]


# ---------------------------------------------------------------- numpy references


def _mask(corpus: Corpus, request: SearchRequest) -> np.ndarray:
    mask = np.ones(len(corpus.ids), dtype=bool)
    if request.corpus is not None:
        mask &= corpus.corpus == request.corpus
    if "brand" in request.filters:
        mask &= corpus.brand == request.filters["brand"]
    return mask


def reference_scores(corpus: Corpus, request: SearchRequest) -> dict[str, float]:
    """Score of every product the mode can return (brute force, float64)."""
    q = request.vector.astype(np.float64)
    q /= np.linalg.norm(q)
    cos = {f: corpus.vectors[f].astype(np.float64) @ (_half(q) if f in corpus.half else q) for f in corpus.vectors}
    mask = _mask(corpus, request)
    if request.mode in ("fused", "image", "title"):
        keep = mask & corpus.has[request.mode]
        return {corpus.ids[i]: cos[request.mode][i] for i in np.flatnonzero(keep)}
    depth = max(request.limit * RRF_DEPTH_FACTOR, RRF_MIN_DEPTH)
    if request.mode == "rrf":
        return rrf_fusion([_top(cos[f], mask & corpus.has[f], depth) for f in ("image", "title")], request.rrf_k,
                          corpus.ids)
    if request.mode in ("bm25", "hybrid"):
        # The IDF is the searched corpus's (the corpus filter), the brand filter only narrows the results.
        population = corpus.corpus == request.corpus if request.corpus is not None else None
        keyword = np.zeros(len(corpus.ids))
        for i, value in bm25_scores(corpus.titles, request.text, Bm25Settings(), population).items():
            keyword[i] = value
        if request.mode == "bm25":
            return {corpus.ids[i]: keyword[i] for i in np.flatnonzero(mask & (keyword > 0))}
        rankings = [_top(cos["fused"], mask, depth), _top(keyword, mask & (keyword > 0), depth)]
        if request.fusion == "rrf":
            return rrf_fusion(rankings, request.rrf_k, corpus.ids)
        return dbsf_fusion(rankings, [cos["fused"], keyword], corpus.ids)
    weights = (request.weights or WEIGHTS).as_dict()
    scores = {}
    for i in np.flatnonzero(mask):
        fields = [f for f in ("image", "title") if weights.get(f, 0) > 0 and corpus.has[f][i]]
        if fields:
            scores[corpus.ids[i]] = sum(weights[f] * cos[f][i] for f in fields)
    return scores


def _top(scores: np.ndarray, keep: np.ndarray, depth: int) -> np.ndarray:
    rows = np.flatnonzero(keep)
    return rows[np.argsort(-scores[rows], kind="stable")][:depth]


def rrf_fusion(rankings: list[np.ndarray], k: int, ids: list[str]) -> dict[str, float]:
    """Σ over rankings of 1 / (k + 0-based position) (Qdrant's RRF)."""
    scores: dict[str, float] = {}
    for ranked in rankings:
        for position, i in enumerate(ranked):
            scores[ids[i]] = scores.get(ids[i], 0.0) + 1.0 / (k + position)
    return scores


def dbsf_fusion(rankings: list[np.ndarray], values: list[np.ndarray], ids: list[str]) -> dict[str, float]:
    """Σ over rankings of (s − (μ − 3σ)) / 6σ, μ and σ (sample) over that ranking's scores; 0.5 each for a
    ranking of one point or of equal scores (Qdrant's DBSF)."""
    fused: dict[str, float] = {}
    for ranked, score in zip(rankings, values, strict=True):
        s = score[ranked].astype(np.float64)
        sigma = s.std(ddof=1) if len(s) > 1 else 0.0
        normalised = (s - (s.mean() - 3 * sigma)) / (6 * sigma) if sigma > 0 else np.full(len(s), 0.5)
        for i, value in zip(ranked, normalised, strict=True):
            fused[ids[i]] = fused.get(ids[i], 0.0) + float(value)
    return fused


def assert_top_k(hits: list[Hit], reference: dict[str, float], limit: int, atol: float = 1e-5) -> None:
    """Hits are the reference top-k: same scores in order, and each hit's score is its own (ties ok)."""
    expected = sorted(reference.values(), reverse=True)[:limit]
    assert len(hits) == len(expected)
    np.testing.assert_allclose([h.score for h in hits], expected, atol=atol)
    for hit in hits:
        assert hit.product_id in reference
        assert hit.score == pytest.approx(reference[hit.product_id], abs=atol)


# ---------------------------------------------------------------- collections and points


def test_both_backends_satisfy_the_protocol(location: str) -> None:
    with open_store(location) as store:
        assert isinstance(store, VectorStore)


def test_create_get_list_and_record_round_trip(location: str) -> None:
    record = make_record()
    with open_store(location) as store:
        assert store.list_collections() == []
        store.create_collection(record)
        store.create_collection(make_record("second"))
        assert store.get_record(NAME) == record
        assert [r.name for r in store.list_collections()] == ["products", "second"]
        with pytest.raises(StoreError, match="already exists"):
            store.create_collection(record)
        assert store.create_collection(record, exist_ok=True) == record
        with pytest.raises(ModelMismatch, match="holds 16-dim vectors"):
            store.create_collection(make_record(dim=32), exist_ok=True)
        with pytest.raises(ConfigError, match="'products' is stored as ram, not int8-disk"):
            store.create_collection(make_record(storage=StorageOptions.preset("int8-disk")), exist_ok=True)


def test_upsert_count_corpus_filter_and_idempotence(loaded: VectorStore, corpus: Corpus) -> None:
    assert loaded.count(NAME) == N
    assert loaded.count(NAME, corpus=1) == int(np.sum(corpus.corpus == 1))
    assert loaded.count(NAME, corpus=2) == int(np.sum(corpus.corpus == 2))
    loaded.upsert(NAME, corpus.points()[:50])  # the same products again: same point ids
    assert loaded.count(NAME) == N


def test_retrieve_round_trips_vectors_and_payload(searchable: VectorStore, stored: Corpus) -> None:
    corpus = stored
    wanted = ["p0000", "p0007", "p0013", "missing"]
    records = searchable.retrieve(NAME, wanted, with_vectors=True)
    assert [r.product_id for r in records] == ["p0000", "p0007", "p0013"]
    for record in records:
        i = corpus.ids.index(record.product_id)
        assert set(record.vectors) == {f for f in corpus.vectors if corpus.has[f][i]}
        for field, vector in record.vectors.items():
            assert vector.dtype == np.float32
            np.testing.assert_allclose(vector, corpus.vectors[field][i], atol=1e-6)
        assert record.payload == {"product_id": record.product_id, "title": corpus.titles[i],
                                  "image": f"images/{record.product_id}.jpg", "corpus": int(corpus.corpus[i]),
                                  "brand": str(corpus.brand[i])}
    assert searchable.retrieve(NAME, ["p0001"])[0].vectors == {}


def test_upsert_arrays_equals_upsert_of_records(location: str, corpus: Corpus) -> None:
    with open_store(location) as store:
        store.create_collection(make_record())
        payloads = [p.payload for p in corpus.points()]
        written = store.upsert_arrays(NAME, corpus.ids, corpus.vectors, corpus.has, payloads)
        assert written == N and store.count(NAME) == N
        (stored,) = store.retrieve(NAME, ["p0005"], with_vectors=True)
        assert set(stored.vectors) == {"title", "fused"}  # 5 % 5 == 0: no image
        with pytest.raises(ConfigError, match="fused"):
            store.upsert_arrays(NAME, corpus.ids[:2], {"image": corpus.vectors["image"][:2]}, None, payloads[:2])
        with pytest.raises(ModelMismatch, match="16"):
            store.upsert_arrays(NAME, corpus.ids[:2], {"fused": np.zeros((2, 8), np.float32)}, None, payloads[:2])


def test_existing_ids(searchable: VectorStore) -> None:
    assert searchable.existing_ids(NAME, ["p0001", "nope", "p0239", "p9999"]) == {"p0001", "p0239"}
    assert searchable.existing_ids(NAME, []) == set()


# ---------------------------------------------------------------- search


QUERY_CASES = [
    dict(mode="fused"), dict(mode="image"), dict(mode="title"), dict(mode="rrf"), dict(mode="weighted"),
    dict(mode="fused", corpus=2), dict(mode="rrf", corpus=1, limit=7), dict(mode="image", filters={"brand": "bolt"}),
    dict(mode="weighted", weights=FieldWeights(image=0.2, title=0.8), corpus=1),
    dict(mode="weighted", weights=FieldWeights(image=0.0, title=1.0), limit=25), dict(mode="rrf", rrf_k=5, limit=3),
    dict(mode="bm25"), dict(mode="bm25", corpus=2), dict(mode="bm25", filters={"brand": "bolt"}, limit=5),
    dict(mode="hybrid"), dict(mode="hybrid", fusion="dbsf"), dict(mode="hybrid", corpus=1, fusion="dbsf", limit=7),
    dict(mode="hybrid", rrf_k=5, corpus=2, limit=4), dict(mode="hybrid", fusion="dbsf", filters={"brand": "acme"}),
]


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_mode_equals_numpy_brute_force(searchable: VectorStore, stored: Corpus, case: dict) -> None:
    corpus = stored
    rng = np.random.default_rng(7)
    for _ in range(4):
        request = SearchRequest(rng.normal(size=DIM).astype(np.float32), exact=True, text=make_query(rng), **case)
        hits = searchable.search(NAME, request)
        assert_top_k(hits, reference_scores(corpus, request), request.limit)
        if request.mode == "bm25":
            assert hits  # every query word is in some title
        for hit in hits:
            assert hit.payload is not None and hit.payload["product_id"] == hit.product_id
            if request.corpus is not None:
                assert hit.payload["corpus"] == request.corpus


def test_weighted_deepens_until_certified_on_adversarial_data(
    location: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Products good in both fields but top in neither must still win the weighted search."""
    rng = np.random.default_rng(3)
    q = np.zeros(DIM, np.float32)
    q[0] = 1.0
    corpus = make_corpus(seed=5, n=200)
    for field in ("image", "title"):
        # 60 products excel in one field and are orthogonal in the other; p0150.. are 0.8/0.8.
        v = rng.normal(size=(200, DIM)).astype(np.float32)
        v[:, 0] = 0.0
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        own = slice(0, 60) if field == "image" else slice(60, 120)
        v[own] = 0.0
        v[own, 0] = 1.0
        v[150:160] = 0.0
        v[150:160, 0], v[150:160, 1] = 0.8, 0.6
        corpus.vectors[field] = v
        corpus.has[field] = np.ones(200, dtype=bool)
    with open_store(location) as store:
        store.create_collection(make_record())
        store.upsert(NAME, corpus.points())
        request = SearchRequest(q, mode="weighted", weights=FieldWeights(image=0.5, title=0.5), limit=5, exact=True)
        caplog.set_level(logging.DEBUG, logger="gcl_vectordb.store")
        hits = store.search(NAME, request)
        assert "deeper candidate set" in caplog.text  # the first candidate set could not certify
        assert_top_k(hits, reference_scores(corpus, request), 5)
        assert {h.product_id for h in hits} <= {f"p{i:04d}" for i in range(150, 160)}


def test_search_without_payload_still_names_products(searchable: VectorStore) -> None:
    hits = searchable.search(NAME, SearchRequest(np.ones(DIM, np.float32), limit=3, with_payload=False))
    assert len(hits) == 3 and all(h.payload is None and h.product_id.startswith("p") for h in hits)


def test_search_batch_equals_repeated_search(searchable: VectorStore) -> None:
    rng = np.random.default_rng(11)
    modes = ["fused", "image", "title", "rrf", "weighted", "bm25", "hybrid"] * 3
    requests = [SearchRequest(rng.normal(size=DIM), mode=m, limit=6, exact=True, text=make_query(rng),
                              fusion=("rrf", "dbsf")[i % 2]) for i, m in enumerate(modes)]
    batch = searchable.search_batch(NAME, requests)
    single = [searchable.search(NAME, r) for r in requests]
    for batched, alone in zip(batch, single, strict=True):  # local mode's numpy may differ in the 8th digit
        assert [h.product_id for h in batched] == [h.product_id for h in alone]
        assert_same_hits(batched, alone, atol=1e-6)


def test_query_of_the_wrong_dimension_is_a_model_mismatch(searchable: VectorStore) -> None:
    with pytest.raises(ModelMismatch, match="tiny-clip@test"):
        searchable.search(NAME, SearchRequest(np.ones(DIM + 1, np.float32)))


def test_backends_agree_on_every_mode(tmp_path: Path, corpus: Corpus) -> None:
    rng = np.random.default_rng(5)
    requests = [SearchRequest(rng.normal(size=DIM), mode=m, limit=8, exact=True, corpus=c, text=make_query(rng),
                              fusion=f)
                for m in ("fused", "image", "title", "rrf", "weighted", "bm25", "hybrid") for c in (None, 2)
                for f in ("rrf", "dbsf")]
    answers = []
    for location in (str(tmp_path / "embedded"), ":memory:"):
        with open_store(location) as store:
            store.create_collection(make_record())
            store.upsert(NAME, corpus.points())
            answers.append(store.search_batch(NAME, requests))
    for embedded_hits, server_hits in zip(*answers, strict=True):
        assert_same_hits(embedded_hits, server_hits)


def assert_same_hits(a: list[Hit], b: list[Hit], atol: float = 1e-5) -> None:
    """Same scores in order and the same products, up to exact ties at the cut-off."""
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=atol)
    cutoff = b[-1].score + atol
    assert {h.product_id for h in a if h.score > cutoff} == {h.product_id for h in b if h.score > cutoff}
    scores_b = {h.product_id: h.score for h in b}
    for hit in a:
        if hit.product_id in scores_b:
            assert hit.score == pytest.approx(scores_b[hit.product_id], abs=atol)


class _RecordingProgress:
    def __init__(self) -> None:
        self.opened = self.closed = 0

    def task(self, description: str, total: float | None = None, unit: str = "it") -> _RecordingProgress:
        self.opened += 1
        return self

    def advance(self, amount: float = 1) -> None:
        self.advanced = getattr(self, "advanced", 0) + amount

    def close(self) -> None:
        self.closed += 1


def test_optimize_then_hnsw_finds_the_exact_top_1_on_clustered_data(location: str) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(12, DIM))
    fused = centres[rng.integers(0, 12, 400)] + 0.15 * rng.normal(size=(400, DIM))
    options = {"indexing_threshold_kb": 1, "full_scan_threshold_kb": 1} if location != ":memory:" else {}
    with open_store(location, **options) as store:
        store.create_collection(make_record(), bulk_load=True)
        ids = [f"c{i}" for i in range(400)]
        store.upsert_arrays(NAME, ids, {"fused": fused.astype(np.float32)}, None,
                            [product_payload(p, p, None, 1) for p in ids])
        progress = _RecordingProgress()
        store.optimize(NAME, progress=progress)
        assert progress.opened == progress.closed == 1
        if isinstance(store, EmbeddedStore):
            assert store.indexed_vectors(NAME) >= 400  # the HNSW graph really exists
        for i in range(0, 400, 40):
            (top,) = store.search(NAME, SearchRequest(fused[i], limit=1, hnsw_ef=64))
            assert top.product_id == ids[i]
        assert store.count(NAME) == 400


def test_drop_and_unknown_collection(loaded: VectorStore) -> None:
    loaded.create_collection(make_record("other"))
    loaded.drop(NAME)
    with pytest.raises(CollectionNotFound, match="existing collections: other"):
        loaded.count(NAME)
    with pytest.raises(CollectionNotFound, match="'nope' not found"):
        loaded.search("nope", SearchRequest(np.ones(DIM)))
    assert [r.name for r in loaded.list_collections()] == ["other"]


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_reopen_after_close_keeps_points_and_record(backend: str, tmp_path: Path, corpus: Corpus) -> None:
    location = str(tmp_path / "store") if backend == "embedded" else f"local:{tmp_path / 'qdrant'}"
    record = make_record()
    with open_store(location) as store:
        store.create_collection(record)
        store.upsert(NAME, corpus.points()[:30])
    with open_store(location) as store:
        assert store.get_record(NAME) == record
        assert store.count(NAME) == 30
        assert store.existing_ids(NAME, ["p0000", "p0029", "p0030"]) == {"p0000", "p0029"}


# ---------------------------------------------------------------- keyword search on old collections


def _keyword_requests(rng: np.random.Generator) -> list[SearchRequest]:
    return [SearchRequest(rng.normal(size=DIM), mode=m, fusion=f, text=make_query(rng), corpus=c, limit=6, exact=True)
            for m, f in (("bm25", "rrf"), ("hybrid", "rrf"), ("hybrid", "dbsf")) for c in (None, 1)]


def test_a_collection_without_bm25_refuses_keyword_modes_until_add_bm25(location: str, corpus: Corpus) -> None:
    """A collection made before keyword search: dense modes work, keyword modes name the fix, and
    `add_bm25` (from the stored titles) gives the answers a collection made with BM25 gives."""
    with open_store(location) as store:
        store.create_collection(replace(make_record(), bm25=None))
        store.upsert(NAME, corpus.points())
        rng = np.random.default_rng(2)
        assert store.search(NAME, SearchRequest(rng.normal(size=DIM), limit=3))
        for request in _keyword_requests(rng)[:2]:
            with pytest.raises(StoreError, match=f"no BM25 sparse vector.*gcl-vdb collections add-bm25 {NAME}"):
                store.search(NAME, request)
        progress = _RecordingProgress()
        upgraded = store.add_bm25(NAME, progress=progress)
        assert upgraded.bm25 == Bm25Settings() and store.get_record(NAME) == upgraded
        assert progress.opened == progress.closed == 1 and progress.advanced == N
        assert store.add_bm25(NAME) == upgraded  # already there: nothing to do
        for request in _keyword_requests(rng):
            assert_top_k(store.search(NAME, request), reference_scores(corpus, request), request.limit)
        assert store.count(NAME) == N


def test_add_bm25_interrupted_leaves_the_collection_usable_and_a_rerun_completes_it(
    location: str, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(location, batch_size=50) as store:
        store.create_collection(replace(make_record(), bm25=None))
        store.upsert(NAME, corpus.points())
        write = type(store)._write_sparse
        calls = []

        def failing(self, name, updates):  # the second page fails, as a full disk or a lost server would
            calls.append(len(updates))
            if len(calls) == 2:
                raise StoreError("disk full")
            write(self, name, updates)

        monkeypatch.setattr(type(store), "_write_sparse", failing)
        with pytest.raises(StoreError, match="disk full"):
            store.add_bm25(NAME)
        assert store.get_record(NAME).bm25 is None  # the record changes last
        rng = np.random.default_rng(4)
        with pytest.raises(StoreError, match="add-bm25"):
            store.search(NAME, _keyword_requests(rng)[0])
        assert store.search(NAME, SearchRequest(rng.normal(size=DIM), limit=3, exact=True))
        monkeypatch.setattr(type(store), "_write_sparse", write)
        store.add_bm25(NAME)
        for request in _keyword_requests(rng):
            assert_top_k(store.search(NAME, request), reference_scores(corpus, request), request.limit)


def test_keyword_query_of_stop_words_only(searchable: VectorStore) -> None:
    """No query term: bm25 finds nothing, hybrid is the dense ranking alone (fused by RRF)."""
    q = np.random.default_rng(8).normal(size=DIM)
    assert searchable.search(NAME, SearchRequest(None, mode="bm25", text="the and of")) == []
    assert searchable.search(NAME, SearchRequest(None, mode="bm25", text="")) == []
    dense = searchable.search(NAME, SearchRequest(q, limit=5, exact=True))
    hybrid = searchable.search(NAME, SearchRequest(q, mode="hybrid", text="of the", limit=5, exact=True))
    assert [h.product_id for h in hybrid] == [h.product_id for h in dense]
    np.testing.assert_allclose([h.score for h in hybrid], [1 / (60 + i) for i in range(5)], rtol=1e-6)


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_add_bm25_survives_reopening(backend: str, tmp_path: Path, corpus: Corpus) -> None:
    location = str(tmp_path / "store") if backend == "embedded" else f"local:{tmp_path / 'qdrant'}"
    with open_store(location) as store:
        store.create_collection(replace(make_record(), bm25=None))
        store.upsert(NAME, corpus.points()[:60])
        store.add_bm25(NAME, Bm25Settings(k=0.9, b=0.4, avg_len=30))
    request = SearchRequest(None, mode="bm25", text="red shoes", limit=5)
    with open_store(location) as store:
        assert store.get_record(NAME).bm25 == Bm25Settings(k=0.9, b=0.4, avg_len=30)
        hits = store.search(NAME, request)
    reference = bm25_scores(corpus.titles[:60], "red shoes", Bm25Settings(k=0.9, b=0.4, avg_len=30))
    assert_top_k(hits, {corpus.ids[i]: s for i, s in reference.items()}, 5)


@pytest.mark.parametrize("preset, recall_floor", [("int8-disk", 0.9), ("binary-disk", 0.5)])
def test_quantized_collections_search_their_copies_and_rescore_with_the_originals(
    tmp_path: Path, preset: str, recall_floor: float
) -> None:
    """With the quantized copies built: unrescored scores are approximate (the copies are really
    searched), rescored ones are the exact cosines, exact search is the brute force, and the HNSW +
    quantization recall@10 is measured against it (a floor far below what it reaches, not equality)."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(12, DIM))
    fused = (centres[rng.integers(0, 12, 400)] + 0.15 * rng.normal(size=(400, DIM))).astype(np.float32)
    ids = [f"c{i}" for i in range(400)]
    with open_store(tmp_path / "store", **TINY_INDEX) as store:
        store.create_collection(make_record(storage=StorageOptions.preset(preset)), bulk_load=True)
        store.upsert_arrays(NAME, ids, {"fused": fused}, None, [product_payload(p, p, None, 1) for p in ids])
        store.optimize(NAME)
        recalls, drift = [], []
        for i in range(0, 400, 10):
            q = fused[i] + 0.3 * rng.normal(size=DIM).astype(np.float32)
            cosines = fused.astype(np.float64) @ (q / np.linalg.norm(q))
            cosines /= np.linalg.norm(fused.astype(np.float64), axis=1)
            reference = dict(zip(ids, cosines, strict=True))
            exact = store.search(NAME, SearchRequest(q, limit=10, exact=True))
            assert_top_k(exact, reference, 10)
            rescored = store.search(NAME, SearchRequest(q, limit=10, hnsw_ef=32))
            assert all(h.score == pytest.approx(reference[h.product_id], abs=1e-5) for h in rescored)
            raw = store.search(NAME, SearchRequest(q, limit=10, hnsw_ef=32, rescore=False))
            drift.append(max(abs(h.score - reference[h.product_id]) for h in raw))
            recalls.append(len({h.product_id for h in exact} & {h.product_id for h in rescored}) / 10)
    assert max(drift) > 1e-3  # scores of the quantized copies, not of the originals
    assert np.mean(recalls) >= recall_floor
