"""The synthetic benchmark: protocol structure, determinism, graded lists against brute force, drawings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcl_vectordb.data import SPLITS, open_dataset
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.data.synth.catalogue import make_catalogue, make_data
from gcl_vectordb.data.synth.drawing import draw_product
from gcl_vectordb.data.synth.ranking import NOISE, rank_all
from gcl_vectordb.data.synth.text import NO_VALUE, make_queries, max_queries, query_text
from gcl_vectordb.data.synth.vocabulary import COLOUR_RGB, COLOURS, SHOWCASE_QUERIES, SLOTS, VALUES
from gcl_vectordb.errors import ConfigError


def _csv_bytes(root: Path) -> dict[str, bytes]:
    return {split.stem: (root / f"{split.stem}.csv").read_bytes() for split in SPLITS}


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synthesize(SynthConfig(out=tmp_path / name, products=60, queries=12, image_size=24, seed=seed,
                               results_per_query=10))
        runs[name] = tmp_path / name
    assert _csv_bytes(runs["a"]) == _csv_bytes(runs["b"])
    for name in ("corpus_1.json", "query_1_product_id_1_gt_test.json", "query_0_product_id_0_queries.json"):
        assert (runs["a"] / name).read_bytes() == (runs["b"] / name).read_bytes()
    jpegs = sorted((runs["a"] / "images").rglob("*.jpg"))
    twins = [runs["b"] / p.relative_to(runs["a"]) for p in jpegs]
    assert [p.read_bytes() for p in jpegs] == [p.read_bytes() for p in twins]
    different = _csv_bytes(runs["c"])
    assert all(different[stem] != same for stem, same in _csv_bytes(runs["a"]).items())


def test_images_and_format_do_not_change_the_tables(tmp_path: Path) -> None:
    base = dict(products=60, queries=12, seed=2, results_per_query=10)
    synthesize(SynthConfig(out=tmp_path / "img", **base))
    synthesize(SynthConfig(out=tmp_path / "txt", images=False, **base))
    with_images = pd.read_csv(tmp_path / "img" / f"{SPLITS[0].stem}.csv")
    without = pd.read_csv(tmp_path / "txt" / f"{SPLITS[0].stem}.csv")
    pd.testing.assert_frame_equal(with_images.drop(columns=["image_local"]), without)
    products = [p for b in open_dataset(tmp_path / "txt").iter_products(1) for p in b]
    assert products and all(p.image_path is None and p.image_bytes is None for p in products)


def test_layout_follows_the_protocol(tiny_gs: Path) -> None:
    corpora = {c: json.loads((tiny_gs / f"corpus_{c}.json").read_text()) for c in (1, 2)}
    assert not set(corpora[1]) & set(corpora[2])
    tables = {s: pd.read_csv(tiny_gs / f"{s.stem}.csv", dtype={"product_id": str}) for s in SPLITS}
    train = set(tables[SPLITS[0]]["query_id"]) | set(tables[SPLITS[2]]["query_id"])
    unseen = set(tables[SPLITS[1]]["query_id"]) | set(tables[SPLITS[3]]["query_id"])
    assert not train & unseen and len(train) + len(unseen) == 12
    assert len(train) == round(0.8 * 12)
    for split, table in tables.items():
        assert list(table.columns) == ["query", "product_id", "title", "image_local", "position",
                                       "score_linear", "score_reciprocal", "no_score", "pair_id", "query_id"]
        assert set(table["product_id"]) <= set(corpora[split.corpus])
        assert (table["query_id"].isin(train if split.queries == "train" else unseen)).all()
        assert (table["score_linear"] == 10 + 1 - table["position"]).all()
        assert np.allclose(table["score_reciprocal"], 1.0 / table["position"])
        assert (table["no_score"] == 1).all()
        queries = json.loads((tiny_gs / f"{split.stem}_queries.json").read_text())
        assert queries == {str(q): t for q, t in table.groupby("query_id")["query"].first().items()}
        dev = json.loads((tiny_gs / f"{split.stem}_gt_dev.json").read_text())
        test = json.loads((tiny_gs / f"{split.stem}_gt_test.json").read_text())
        assert not set(dev) & set(test) and set(dev) | set(test) == set(table["query"])
        assert 0 <= len(dev) - len(test) <= 1
        for query, judged in {**dev, **test}.items():
            rows = table[table["query"] == query]
            assert judged == dict(zip(rows["product_id"], rows["score_linear"], strict=True))
    # a query's list over the whole catalogue is split by corpus, positions kept: together 1..N, no gaps
    train_lists = pd.concat([tables[SPLITS[0]], tables[SPLITS[2]]])
    for _, rows in train_lists.groupby("query_id"):
        assert sorted(rows["position"]) == list(range(1, len(rows) + 1))
    assert len(set(pd.concat(tables.values())["pair_id"])) == sum(len(t) for t in tables.values())


def test_corpora_hold_exactly_the_listed_products_with_their_attributes(tiny_gs: Path) -> None:
    listed = set().union(*(pd.read_csv(tiny_gs / f"{s.stem}.csv", dtype=str)["product_id"] for s in SPLITS))
    corpus = {**json.loads((tiny_gs / "corpus_1.json").read_text()),
              **json.loads((tiny_gs / "corpus_2.json").read_text())}
    assert set(corpus) == listed
    for entry in corpus.values():
        assert {slot: entry[slot] in VALUES[slot] for slot in SLOTS} == dict.fromkeys(SLOTS, True)


def test_queries_are_natural_unique_and_start_with_the_showcase() -> None:
    queries = make_queries(400, np.random.default_rng(0))
    assert queries.texts[: len(SHOWCASE_QUERIES)] == SHOWCASE_QUERIES
    assert len(set(queries.texts)) == 400
    assert "red summer dress" in queries.texts
    category, colour, pattern, material = queries.attributes[queries.texts.index("red summer dress")].tolist()
    named = (VALUES["category"][category], VALUES["colour"][colour], pattern, VALUES["material"][material])
    assert named == ("dress", "red", NO_VALUE, "summer")
    sizes = (queries.attributes != NO_VALUE).sum(axis=1)
    assert set(sizes.tolist()) == {1, 2, 3}
    assert all(queries.attributes[i, 0] != NO_VALUE for i in np.flatnonzero(sizes > 1))  # with a category
    assert all(query_text(a) == t for a, t in zip(queries.attributes, queries.texts, strict=True))
    assert len(make_queries(max_queries(), np.random.default_rng(1)).texts) == max_queries()


@pytest.mark.parametrize("limit", [1, 7, 40])
def test_result_lists_match_a_brute_force_reference(limit: int) -> None:
    catalogue = make_catalogue(400, seed=limit)
    queries = make_queries(30, np.random.default_rng(limit))
    lists = rank_all(catalogue.attributes, queries.attributes, limit, np.random.default_rng(0))
    for q, wanted in enumerate(queries.attributes):
        asked = wanted != NO_VALUE
        matches = (catalogue.attributes[:, asked] == wanted[asked]).sum(axis=1)  # brute force, every product
        rows = lists.query == q
        listed, listed_matches = lists.product[rows], lists.matches[rows]
        assert lists.position[rows].tolist() == list(range(1, len(listed) + 1))
        assert len(set(listed.tolist())) == len(listed) == min(limit, int((matches >= 1).sum()))
        assert (listed_matches == matches[listed]).all()
        # graded order: noise < 1 lets a product overtake at most one match tier
        assert all(listed_matches[i] >= listed_matches[j] - 1
                   for i in range(len(listed)) for j in range(i + 1, len(listed)))
        unlisted = np.setdiff1d(np.flatnonzero(matches >= 1), listed)
        if len(unlisted) and len(listed):
            assert matches[unlisted].max() <= listed_matches.min() + 1
            assert NOISE < 1


def test_lists_and_splits_are_deterministic_for_a_seed() -> None:
    a, b = make_data(200, 20, 15, seed=9), make_data(200, 20, 15, seed=9)
    assert a.catalogue.product_ids == b.catalogue.product_ids and a.catalogue.titles == b.catalogue.titles
    assert (a.lists.product == b.lists.product).all() and (a.is_train == b.is_train).all()
    assert int(a.catalogue.corpus.tolist().count(1)) == 100


def test_drawn_colour_and_silhouette_follow_the_attributes() -> None:
    size = 64
    for colour in ("red", "blue", "green", "yellow"):
        for category in (0, 7):  # dress, shoes
            pixels = draw_product(np.array([category, COLOURS.index(colour), 0, 2]), size,
                                  np.random.default_rng(1)).astype(float)
            background = pixels[0, 0]
            garment = pixels[np.abs(pixels - background).sum(axis=2) > 60]
            assert len(garment) > 100
            mean = garment.mean(axis=0)
            nearest = min(COLOUR_RGB, key=lambda c: np.abs(np.array(COLOUR_RGB[c]) - mean).sum())
            assert nearest == colour
    dress = draw_product(np.array([0, 0, 0, 2]), size, np.random.default_rng(1))
    shoes = draw_product(np.array([7, 0, 0, 2]), size, np.random.default_rng(1))
    tall = lambda p: np.ptp(np.flatnonzero((np.abs(p.astype(int) - p[0, 0]).sum(axis=2) > 60).any(axis=1)))  # noqa: E731
    assert tall(dress) > 1.5 * tall(shoes)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("products", 3, "products must be ≥ 10"), ("queries", 10**6, "queries must be in 5..2689"),
     ("image_size", 8, "image size must be in 16..512"),
     ("format", "csv", "format must be official or parquet"),
     ("results_per_query", 0, "results per query must be ≥ 1"), ("seed", -1, "seed must be ≥ 0")],
)
def test_config_is_validated(tmp_path: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(out=tmp_path, **{field: value})


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    config = SynthConfig(out=tmp_path, products=20, queries=5, images=False, results_per_query=5)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty — choose an empty folder or pass --overwrite"):
        synthesize(config)
    report = synthesize(SynthConfig(**{**config.__dict__, "overwrite": True}))
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the generator's own files are replaced
    assert report.info.layout == "official" and sum(c.products for c in report.info.corpora) > 0
