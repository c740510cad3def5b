"""The reader over both layouts: identical records from the same synthetic data, streaming, re-rooting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcl_vectordb.data import (
    SPLITS,
    ImageRejected,
    ImageResolver,
    RejectLog,
    decode_image,
    open_dataset,
)
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.errors import DataError

COMMON_COLUMNS = ["query", "product_id", "position", "title", "pair_id", "score_linear", "score_reciprocal",
                  "no_score", "query_id"]


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("layouts")
    for layout in ("official", "parquet"):
        synthesize(SynthConfig(out=root / layout, products=80, queries=15, image_size=24, seed=3,
                               format=layout, results_per_query=12))
    return root / "official", root / "parquet"


def _products(dataset, corpus: int) -> dict[str, tuple]:
    return {p.product_id: (p.title, p.corpus, p.read_image_bytes())
            for batch in dataset.iter_products(corpus, batch_size=7) for p in batch}


def test_both_layouts_read_into_identical_records(both_layouts: tuple[Path, Path]) -> None:
    official, parquet = (open_dataset(root) for root in both_layouts)
    assert (official.layout, parquet.layout) == ("official", "parquet")
    assert official.splits == parquet.splits == SPLITS
    for corpus in (1, 2):
        from_json, from_parquet = _products(official, corpus), _products(parquet, corpus)
        assert from_json == from_parquet
        assert len(from_json) == official.count_products(corpus) == parquet.count_products(corpus) > 0
        assert all(image[:2] == b"\xff\xd8" for _, _, image in from_json.values())  # JPEG
    for split in SPLITS:
        a, b = official.read_split(split), parquet.read_split(split)
        pd.testing.assert_frame_equal(a[COMMON_COLUMNS], b[COMMON_COLUMNS])
        assert official.queries(split) == parquet.queries(split)
        assert list(official.iter_judgments(split, batch_size=5)) == list(
            parquet.iter_judgments(split, batch_size=5))


def test_split_table_dtypes_and_judgments(both_layouts: tuple[Path, Path]) -> None:
    dataset = open_dataset(both_layouts[0])
    table = dataset.read_split("novel-doc")
    assert {c: str(table[c].dtype) for c in ("query", "product_id", "query_id", "pair_id")} == dict.fromkeys(
        ("query", "product_id", "query_id", "pair_id"), "str")
    assert table["position"].dtype == np.int64
    assert {str(table[c].dtype) for c in ("score_linear", "score_reciprocal", "no_score")} == {"float64"}
    assert "image_local" in table.columns  # extra columns are kept
    judgments = [j for batch in dataset.iter_judgments("novel-doc", batch_size=4) for j in batch]
    assert max(len(batch) for batch in dataset.iter_judgments("novel-doc", batch_size=4)) == 4
    assert [(j.query, j.product_id, j.position, j.score_linear, j.query_id) for j in judgments] == list(zip(
        table["query"], table["product_id"], table["position"], table["score_linear"], table["query_id"],
        strict=True))
    narrow = dataset.read_split("novel-doc", columns=["position"])
    assert list(narrow.columns) == ["query", "product_id", "position", "score_linear"]


def test_products_stream_in_batches_in_a_stable_order_and_resume(both_layouts: tuple[Path, Path]) -> None:
    for root in both_layouts:
        dataset = open_dataset(root)
        batches = list(dataset.iter_products(1, batch_size=6))
        assert all(len(b) == 6 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 6
        ids = [p.product_id for b in batches for p in b]
        assert ids == [p.product_id for b in dataset.iter_products(1, batch_size=50) for p in b]
        resumed = list(dataset.product_batches(1, batch_size=4, start=10))
        assert [p.product_id for b in resumed for p in b.products] == ids[10:]
        assert [b.end for b in resumed[:-1]] == list(range(14, len(ids) + 1, 4))[: len(resumed) - 1]
        assert resumed[-1].complete and resumed[-1].end == len(ids)
        retried = list(dataset.product_batches(1, batch_size=4, start=10, retry={ids[2], ids[7]}))
        assert [p.product_id for b in retried for p in b.products] == [ids[2], ids[7], *ids[10:]]
        assert all(p.corpus == 1 for b in batches for p in b)


def test_official_order_is_corpus_file_order(both_layouts: tuple[Path, Path]) -> None:
    root = both_layouts[0]
    in_file = list(json.loads((root / "corpus_2.json").read_text()))
    assert [p.product_id for b in open_dataset(root).iter_products(2) for p in b] == in_file


def test_queries_come_from_the_queries_json_or_the_csv(tiny_gs: Path, tmp_path: Path) -> None:
    dataset = open_dataset(tiny_gs)
    from_json = dataset.queries("in-domain")
    assert from_json == json.loads((tiny_gs / "query_0_product_id_0_queries.json").read_text())
    copy = tmp_path / "gs"
    copy.mkdir()
    for name in ("corpus_1.json", "query_0_product_id_0.csv"):
        (copy / name).write_bytes((tiny_gs / name).read_bytes())
    assert open_dataset(copy).queries("in-domain") == from_json  # derived from the CSV, same content
    assert open_dataset(copy).splits == (SPLITS[0],)
    with pytest.raises(DataError, match=r"split zero-shot is not in .* \(present: in-domain\)"):
        open_dataset(copy).read_split("zero-shot")


def test_image_paths_are_rerooted_from_the_archive_path(tiny_gs: Path) -> None:
    corpus = json.loads((tiny_gs / "corpus_1.json").read_text())
    first_id, first = next(iter(corpus.items()))
    assert first["image_local"].startswith("/archive/images_archive/")
    assert not Path(first["image_local"]).exists()
    product = next(iter(open_dataset(tiny_gs).iter_products(1)))[0]
    assert product.product_id == first_id
    assert product.image_path == tiny_gs / "images" / first["image_local"].split("images_archive/")[1]
    image = decode_image(product)
    assert image.mode == "RGB" and image.size == (32, 32)


def test_rerooting_rules(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "shard").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (images / "shard" / name).write_bytes(b"x")
    resolver = ImageResolver(images)
    assert resolver.resolve("/data/images_archive/shard/a.jpg") == images / "shard" / "a.jpg"
    assert resolver.resolve("C:\\imgs\\shard\\a.jpg") == images / "shard" / "a.jpg"
    assert resolver.resolve("/old/root/shard/b.jpg") == images / "shard" / "b.jpg"  # learnt: drop two components
    assert resolver.resolve("shard/b.jpg") == images / "shard" / "b.jpg"  # per path: relative to the folder
    assert resolver.resolve(str(images / "shard" / "a.jpg")) == images / "shard" / "a.jpg"  # absolute, inside
    with pytest.raises(ImageRejected, match=f"missing-image: no file {images}/shard/gone.jpg") as gone:
        resolver.resolve("/old/root/shard/gone.jpg")
    assert gone.value.reason == "missing-image"
    assert resolver.locate("/old/root/shard/gone.jpg") == images / "shard" / "gone.jpg"  # unchecked


def test_open_dataset_explains_what_it_expected(tmp_path: Path, tiny_gs: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as missing:
        open_dataset(tmp_path / "nope")
    assert "gcl-vdb data synth --out DIR" in str(missing.value)
    with pytest.raises(DataError, match="expected corpus_1.json .* or <split>-\\*.parquet") as empty:
        open_dataset(tmp_path)
    assert "gcl-vdb data synth --out DIR" in str(empty.value) and "gcl-vdb data download" in str(empty.value)
    parent = tmp_path / "tar"
    (parent / "marqo_gs_wfash_1m").mkdir(parents=True)
    (parent / "marqo_gs_wfash_1m" / "corpus_1.json").write_bytes((tiny_gs / "corpus_1.json").read_bytes())
    with pytest.raises(DataError, match="sub-folders: marqo_gs_wfash_1m"):
        open_dataset(parent)


def test_parquet_accepts_binary_and_path_only_image_columns(tmp_path: Path, tiny_gs: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_file = next((tiny_gs / "images").rglob("*.jpg"))
    data = tmp_path / "data"
    data.mkdir()
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({
        "image": pa.array([b"\xff\xd8raw", None], pa.binary()),
        "query": ["q", "q"], "product_id": ["p1", "p2"], "title": ["t1", "t2"], "score_linear": [2, 1],
    }), data / "in_domain-00000-of-00001.parquet")
    pq.write_table(pa.table({
        "image": pa.array([{"bytes": None, "path": f"/elsewhere/{image_file.name}"}], struct),
        "query": ["q"], "product_id": [7], "title": ["t3"], "score_linear": [1],
    }), data / "novel_document-00000-of-00001.parquet")
    dataset = open_dataset(tmp_path, images_dir=image_file.parent)
    one = [p for b in dataset.iter_products(1) for p in b]
    assert [(p.product_id, p.image_bytes) for p in one] == [("p1", b"\xff\xd8raw"), ("p2", None)]
    (two,) = [p for b in dataset.iter_products(2) for p in b]
    assert (two.product_id, two.image_path) == ("7", image_file)
    assert dataset.read_split("novel-doc")["product_id"].tolist() == ["7"]


def test_images_next_to_a_downloaded_dataset_are_found(tiny_gs: Path, tmp_path: Path) -> None:
    # the layout `gcl-vdb data download` extracts: marqo-gs-dataset/{marqo_gs_wfash_1m, images_wfash}
    data = tmp_path / "marqo-gs-dataset" / "marqo_gs_wfash_1m"
    shutil.copytree(tiny_gs, data)
    (data / "images").rename(data.parent / "images_wfash")
    dataset = open_dataset(data)
    assert dataset.images_dir == data.parent / "images_wfash"
    rejects = RejectLog()
    products = [p for b in dataset.iter_products(1, rejects=rejects) for p in b]
    assert len(rejects) == 0 and all(p.image_path.is_file() for p in products)
