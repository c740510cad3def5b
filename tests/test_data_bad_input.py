"""Bad input is reported as (source, row, reason) and skipped, or raised with a message that names it."""

from __future__ import annotations

import codecs
import json
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gcl_vectordb.data import ImageRejected, Product, RejectLog, decode_image, open_dataset
from gcl_vectordb.errors import DataError

CSV = "query_0_product_id_0.csv"


@pytest.fixture
def gs(tiny_gs: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "gs"
    shutil.copytree(tiny_gs, copy)
    return copy


def _edit_corpus(root: Path, corpus: int, edit) -> list[str]:
    path = root / f"corpus_{corpus}.json"
    entries = json.loads(path.read_text())
    edit(entries)
    path.write_text(json.dumps(entries))
    return list(entries)


def _edit_csv(root: Path, edit) -> pd.DataFrame:
    frame = pd.read_csv(root / CSV, dtype=str, keep_default_na=False)
    frame = edit(frame)
    frame.to_csv(root / CSV, index=False)
    return frame


def _read_all(root: Path, corpus: int, rejects: RejectLog, **kwargs) -> list[Product]:
    return [p for batch in open_dataset(root).iter_products(corpus, rejects=rejects, **kwargs) for p in batch]


def test_missing_required_column_names_the_column_and_the_file(gs: Path) -> None:
    _edit_csv(gs, lambda f: f.drop(columns=["score_linear"]))
    with pytest.raises(DataError, match=rf"{CSV}: missing required column\(s\) score_linear \(found: "):
        open_dataset(gs).read_split("in-domain")
    _edit_csv(gs, lambda f: f.drop(columns=["query", "product_id"]))
    with pytest.raises(DataError, match=r"missing required column\(s\) query, product_id, score_linear"):
        list(open_dataset(gs).iter_judgments("in-domain"))
    table = open_dataset(gs).read_split("novel-query", weight_column="score_reciprocal")
    with pytest.raises(DataError, match="missing required column.*relevance"):
        open_dataset(gs).read_split("novel-query", weight_column="relevance")
    assert len(table) > 0


def test_missing_required_column_in_parquet_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    name = "zero_shot-00000-of-00001.parquet"
    pq.write_table(pa.table({"query": ["q"], "product_id": ["p"]}), tmp_path / "data" / name)
    with pytest.raises(DataError, match=rf"{name}: missing required column\(s\) score_linear"):
        open_dataset(tmp_path).read_split("zero-shot")


def test_duplicate_product_id_is_reported_and_the_first_kept(gs: Path) -> None:
    path = gs / "corpus_1.json"
    entries = list(json.loads(path.read_text()).items())
    first_id, first = entries[0]
    # json.dumps cannot repeat a key; write the object by hand with the first id again in third place
    repeated = [*entries[:2], (first_id, {**first, "title": "impostor"}), *entries[2:]]
    path.write_text("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in repeated) + "}")
    rejects = RejectLog()
    products = _read_all(gs, 1, rejects)
    assert [p.product_id for p in products] == [k for k, _ in entries]
    assert next(p for p in products if p.product_id == first_id).title == first["title"]
    (reject,) = rejects
    assert (reject.source, reject.row, reject.reason, reject.product_id) == (
        "corpus_1.json", 3, "duplicate-product-id", first_id)
    assert str(reject).startswith(f"corpus_1.json row 3 product {first_id}: duplicate-product-id")


def test_missing_image_file_is_reported_and_the_rest_kept(gs: Path) -> None:
    ids = list(json.loads((gs / "corpus_2.json").read_text()))
    victim = ids[4]
    (image,) = (gs / "images").rglob(f"{victim}.jpg")
    image.unlink()
    rejects = RejectLog()
    products = _read_all(gs, 2, rejects)
    assert [p.product_id for p in products] == ids[:4] + ids[5:]
    (reject,) = rejects
    assert (reject.row, reject.reason, reject.product_id) == (5, "missing-image", victim)
    assert reject.detail == f"no file {image}"
    assert len(_read_all(gs, 2, RejectLog(), check_images=False)) == len(ids)  # unchecked: kept
    with pytest.raises(ImageRejected, match=f"missing-image: {image}") as caught:
        decode_image(Product(victim, "t", 2, image_path=image))
    assert caught.value.reason == "missing-image"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_image_is_rejected_by_decode_image(gs: Path, damage: str) -> None:
    product = _read_all(gs, 1, RejectLog())[0]
    data = product.image_path.read_bytes()
    broken = {"garbage": b"not an image at all", "truncated": data[: len(data) // 2], "empty": b""}[damage]
    product.image_path.write_bytes(broken)
    with pytest.raises(ImageRejected, match=f"corrupt-image: {product.image_path}: ") as caught:
        decode_image(product)
    assert (caught.value.reason, isinstance(caught.value, DataError)) == ("corrupt-image", True)
    copied = pickle.loads(pickle.dumps(caught.value))  # crosses from ingest worker processes
    original = caught.value
    assert (copied.reason, copied.detail, str(copied)) == (original.reason, original.detail, str(original))
    assert pickle.loads(pickle.dumps(product)) == product
    embedded = Product("p9", "t", 1, image_bytes=broken)
    with pytest.raises(ImageRejected, match="corrupt-image: embedded image of product p9"):
        decode_image(embedded)
    with pytest.raises(ImageRejected, match="missing-image: product p9 has no image"):
        decode_image(Product("p9", "t", 1))


def test_products_without_a_title_are_kept_as_the_official_reader_keeps_them(gs: Path) -> None:
    """A null or missing title leaves the product image-only; a blank title is a title (the official reader
    zeroes only a title that is not `pd.notna`); no title and no image at all is a reject."""
    def untitled(entries: dict) -> None:
        keys = list(entries)
        entries[keys[1]]["title"] = "   "
        del entries[keys[2]]["title"]
        entries[keys[3]]["title"] = None
        entries[keys[4]]["title"] = None
        del entries[keys[4]]["image_local"]

    ids = _edit_corpus(gs, 1, untitled)
    rejects = RejectLog()
    products = {p.product_id: p for p in _read_all(gs, 1, rejects)}
    assert list(products) == ids[:4] + ids[5:]
    assert [products[i].title for i in ids[1:4]] == ["   ", None, None]
    assert all(products[i].image_path.is_file() for i in ids[1:4])
    assert [(r.row, r.reason, r.product_id, r.detail) for r in rejects] == [
        (5, "empty-title", ids[4], "the product has neither a title nor an image")]


def test_empty_title_in_parquet(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"query": ["q", "q", "q"], "product_id": ["a", "b", "c"], "title": ["", "fine", None],
                             "image": [None, None, b"\xff\xd8jpeg"], "score_linear": [2, 1, 1]}),
                   tmp_path / "data" / "in_domain-00000-of-00001.parquet")
    rejects = RejectLog()
    products = _read_all(tmp_path, 1, rejects)
    assert [(p.product_id, p.title, p.image_cell) for p in products] == [
        ("b", "fine", None), ("c", None, "data/in_domain-00000-of-00001.parquet#3")]
    assert [str(r) for r in rejects] == [
        "in_domain-00000-of-00001.parquet row 1 product a: empty-title (the product has neither a title nor an image)"]


def test_non_numeric_score_is_reported_with_its_row_and_dropped(gs: Path) -> None:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[2, "score_linear"] = "n/a"
        frame.loc[4, "score_reciprocal"] = "0.5x"
        frame.loc[5, "score_linear"] = ""
        return frame

    frame = _edit_csv(gs, spoil)
    rejects = RejectLog()
    table = open_dataset(gs).read_split("in-domain", rejects=rejects)
    assert len(table) == len(frame) - 3
    assert table["score_linear"].dtype == "float64"
    assert [(r.source, r.row, r.reason, r.detail, r.product_id) for r in rejects] == [
        (CSV, 6, "non-numeric-score", "score_linear is empty", frame.loc[5, "product_id"]),
        (CSV, 3, "non-numeric-score", "score_linear='n/a'", frame.loc[2, "product_id"]),
        (CSV, 5, "non-numeric-score", "score_reciprocal='0.5x'", frame.loc[4, "product_id"]),
    ]
    streamed = RejectLog()
    batches = open_dataset(gs).iter_judgments("in-domain", batch_size=3, rejects=streamed)
    judgments = [j for batch in batches for j in batch]
    assert len(judgments) == len(table)
    assert sorted(r.row for r in streamed) == [3, 5, 6]


def test_malformed_csv_line_is_reported_and_later_rows_keep_their_numbers(gs: Path) -> None:
    lines = (gs / CSV).read_text().splitlines()
    lines[3] += ",one too many"  # data row 3
    lines[6] = lines[6].replace(",", ",x,", 1)
    fields = lines[7].split(",")  # data row 7 (titles hold no commas in this seed's first rows)
    lines[7] = ",".join([*fields[:5], "bad", *fields[6:]])  # its score_linear
    (gs / CSV).write_text("\n".join(lines) + "\n")
    rejects = RejectLog()
    table = open_dataset(gs).read_split("in-domain", rejects=rejects)
    assert len(table) == len(lines) - 1 - 3
    assert sorted((r.row, r.reason) for r in rejects) == [
        (3, "malformed-row"), (6, "malformed-row"), (7, "non-numeric-score")]
    assert any("expected 10 fields, saw 11" in r.detail for r in rejects)


def test_empty_query_and_product_id_and_bad_position_are_malformed_rows(gs: Path) -> None:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "query"] = " "
        frame.loc[1, "product_id"] = ""
        frame.loc[2, "position"] = "2.5"
        return frame

    _edit_csv(gs, spoil)
    rejects = RejectLog()
    open_dataset(gs).read_split("in-domain", rejects=rejects)
    assert [(r.row, r.reason, r.detail) for r in rejects] == [
        (1, "malformed-row", "empty query"), (2, "malformed-row", "empty product_id"),
        (3, "malformed-row", "position=2.5 is not an integer")]


def test_corpus_entry_that_is_not_an_object_is_a_malformed_row(gs: Path) -> None:
    ids = _edit_corpus(gs, 2, lambda entries: entries.__setitem__(next(iter(entries)), "just a string"))
    rejects = RejectLog()
    assert [p.product_id for p in _read_all(gs, 2, rejects)] == ids[1:]
    assert [str(r) for r in rejects] == [
        f"corpus_2.json row 1 product {ids[0]}: malformed-row (expected an object, got str)"]


def test_truncated_corpus_file_is_an_error_naming_the_file(gs: Path) -> None:
    path = gs / "corpus_1.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DataError, match=r"corpus_1.json: malformed JSON \(\d+ entries read before it\): parse error: premature EOF .* truncated"):
        _read_all(gs, 1, RejectLog())


def test_missing_corpus_file_is_an_error_naming_it(gs: Path) -> None:
    (gs / "corpus_2.json").unlink()
    dataset = open_dataset(gs)
    assert dataset.corpora == (1,)
    with pytest.raises(DataError, match=r"corpus_2.json is missing"):
        dataset.count_products(2)


def test_unreadable_split_files_are_errors_naming_them(gs: Path, tmp_path: Path) -> None:
    (gs / CSV).write_text("")
    with pytest.raises(DataError, match=f"{CSV} has no readable header row"):
        open_dataset(gs).read_split("in-domain")
    good = "".join(f"q,p{i},1\n" for i in range(100_000))  # past the parser's first buffer
    (gs / CSV).write_text(f'query,product_id,score_linear\n{good}"open quote,p,1\n')
    with pytest.raises(DataError, match=f"{CSV} cannot be parsed as CSV: .* truncated"):
        open_dataset(gs).read_split("in-domain")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "novel_query-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="novel_query-00000-of-00001.parquet is not a readable parquet file"):
        open_dataset(tmp_path / "hf").read_split("novel-query")


def test_a_corpus_file_with_a_byte_order_mark_is_read(gs: Path) -> None:
    path = gs / "corpus_1.json"
    expected = [p.product_id for p in _read_all(gs, 1, RejectLog())]
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    rejects = RejectLog()
    assert [p.product_id for p in _read_all(gs, 1, rejects)] == expected and len(rejects) == 0
    assert open_dataset(gs).count_products(1) == len(expected)
