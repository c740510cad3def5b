"""Fixing rejected products and re-running: the images folder (`--images-dir`), retries of curable rejects
with a recovered count, consistent counts, and a dataset that cannot be read before a collection exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.data import open_dataset
from gcl_vectordb.data.records import Reject
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.ingest.state import RejectsFile
from gcl_vectordb.store import open_store
from tests.ingest_fixtures import copy_dataset

runner = CliRunner()


def _config(data: Path, bundle: Path, store: Path, **overrides) -> IngestConfig:
    values = {"collection": "gs", "data": data, "model_ref": str(bundle), "store": str(store), "batch_size": 8,
              "workers": 0, "build_index": False} | overrides
    return IngestConfig(**values)


def _stored(store: Path) -> tuple[int, int, int]:
    with open_store(store) as opened:
        return opened.count("gs"), opened.count("gs", corpus=1), opened.count("gs", corpus=2)


def test_images_outside_the_data_folder_need_images_dir_and_a_rerun_then_stores_them(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path
) -> None:
    root = copy_dataset(tiny_gs, tmp_path)
    pictures = tmp_path / "pictures"
    shutil.move(root / "images", pictures)
    store = tmp_path / "store"
    args = ["ingest", "--collection", "gs", "--data", str(root), "--model", str(micro_bundle), "--qdrant", str(store),
            "--workers", "0", "--no-index"]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "not one product of" in failed.output and "missing-image 55" in failed.output
    assert "pass --images-dir DIR" in " ".join(failed.output.split())

    fixed = runner.invoke(app, [*args, "--images-dir", str(pictures), "--json"])
    assert fixed.exit_code == 0, fixed.output
    report = json.loads(fixed.stdout)
    assert report["points_written"] == report["points_total"] == 55 and report["rejects"] == {}
    assert report["images_dir"] == str(pictures)
    with open_store(store) as opened:
        assert opened.get_record("gs").ingest["images_dir"] == str(pictures)
    again = runner.invoke(app, [*args, "--json"])  # the collection's folder is the default from now on
    assert again.exit_code == 0 and json.loads(again.stdout)["points_present"] == 55

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(pictures, elsewhere)
    with pytest.raises(ConfigError, match=f"holds 55 products whose images are in {pictures}, not {elsewhere}"):
        ingest_dataset(_config(root, micro_bundle, store, images_dir=elsewhere))


def test_restored_images_are_retried_and_recovered_with_consistent_counts(tmp_path: Path, tiny_gs: Path,
                                                                         micro_bundle: Path) -> None:
    root = copy_dataset(tiny_gs, tmp_path)
    products = next(iter(open_dataset(root).iter_products(1, batch_size=4)))
    originals = {p.image_path: p.image_path.read_bytes() for p in products[:3]}
    products[0].image_path.write_bytes(b"not a jpeg")
    products[1].image_path.write_bytes(b"")
    products[2].image_path.unlink()
    store = tmp_path / "store"
    first = ingest_dataset(_config(root, micro_bundle, store))
    assert first.rejects == {"corrupt-image": 2, "missing-image": 1} and first.points_total == 52
    assert (first.points_written, first.points_present) == (52, 0)

    products[0].image_path.write_bytes(originals[products[0].image_path])  # fix one, leave one, change one
    products[2].image_path.write_bytes(b"still broken")
    second = ingest_dataset(_config(root, micro_bundle, store))
    assert (second.retried, second.recovered, second.points_written, second.points_present) == (3, 1, 1, 52)
    assert second.points_total == _stored(store)[0] == 53
    assert second.points_written + second.points_present == second.points_total
    assert [(c.written, c.present) for c in second.corpora] == [(1, 25), (0, 27)]
    assert second.rejects == {"corrupt-image": 2} and second.new_rejects == 1  # products[2]: a new reason
    lines = [json.loads(line) for line in second.rejects_file.read_text().splitlines()]
    assert sorted((e["product_id"], e["reason"]) for e in lines) == sorted(
        [(products[1].product_id, "corrupt-image"), (products[2].product_id, "corrupt-image")])

    for path, data in originals.items():
        path.write_bytes(data)
    third = runner.invoke(app, ["ingest", "--collection", "gs", "--data", str(root), "--model", str(micro_bundle),
                                "--qdrant", str(store), "--workers", "0", "--no-index"])
    assert third.exit_code == 0, third.output
    assert "2 earlier rejects: 2 recovered, 0 still rejected" in " ".join(third.output.split())
    assert _stored(store) == (55, 28, 27) and second.rejects_file.read_text() == ""
    fourth = ingest_dataset(_config(root, micro_bundle, store))
    assert (fourth.retried, fourth.points_written, fourth.points_present, fourth.rejects) == (0, 0, 55, {})


def test_rejects_file_replaces_retried_rejects_in_place_and_survives_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    first = RejectsFile(path, resume=False)
    rejects = [Reject("corpus_1.json", 1, "duplicate-product-id", "again", "a"),
               Reject("corpus_1.json", 2, "missing-image", "no file x", "b"),
               Reject("images of corpus 1", 0, "corrupt-image", "bad", "c")]
    assert first.add(rejects, 1) == 3
    first.add([Reject("corpus_2.json", 4, "missing-image", "no file y", "d")], 2)
    first.close()
    before = path.read_text()

    crashed = RejectsFile(path, resume=True)  # b and c retried; the run dies before the corpus ends
    assert crashed.retrying(1) == {"b", "c"} and crashed.retrying(2) == {"d"}
    assert crashed.add([Reject("images of corpus 1", 0, "corrupt-image", "bad again", "c")], 1) == 0
    crashed.close()

    resumed = RejectsFile(path, resume=True)
    assert resumed.retrying(1) == {"b", "c"}
    assert resumed.add([Reject("images of corpus 1", 0, "corrupt-image", "worse", "c")], 1) == 0
    resumed.settle(1)  # b recovered, c still bad (its line keeps its place, with the new detail)
    assert resumed.retrying(1) == frozenset() and resumed.retrying(2) == {"d"}
    resumed.settle(2)  # d recovered too
    resumed.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["product_id"], e["detail"]) for e in lines] == [("a", "again"), ("c", "worse")]
    assert resumed.counts == {"duplicate-product-id": 1, "corrupt-image": 1} and before != path.read_text()


def test_a_parquet_split_without_product_id_fails_before_a_collection_exists(tmp_path: Path,
                                                                             micro_bundle: Path) -> None:
    data = tmp_path / "hf" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"query": ["q"], "id": ["p"], "title": ["t"], "score_linear": [1.0]}),
                   data / "in_domain-00000-of-00001.parquet")
    store = tmp_path / "store"
    with pytest.raises(DataError, match=r"in_domain-00000-of-00001.parquet: missing required column\(s\) product_id"):
        ingest_dataset(_config(tmp_path / "hf", micro_bundle, store))
    with open_store(store) as opened:
        assert opened.list_collections() == []
    result = runner.invoke(app, ["ingest", "--collection", "gs", "--data", str(tmp_path / "hf"), "--model",
                                 str(micro_bundle), "--qdrant", str(store), "--workers", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output and "product_id" in result.output
