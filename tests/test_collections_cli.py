"""`gcl-vdb collections list|info|drop|add-bm25` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.store import CollectionRecord, PointRecord, open_store, product_payload
from gcl_vectordb.store.storage import parse_storage

runner = CliRunner()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with open_store(root) as store:
        store.create_collection(CollectionRecord(
            "gs10m", model_ref="runs/demo/model", dim=8, field_weights=FieldWeights(image=0.4, title=0.6),
            dataset_root="/data/gs", ingest={"batch_size": 64},
        ))
        store.upsert("gs10m", [
            PointRecord(f"p{i}", {"fused": np.ones(8)}, product_payload(f"p{i}", "t", None, 1 + (i < 3)))
            for i in range(7)
        ])
        store.create_collection(CollectionRecord("empty", model_ref="other-model", dim=4,
                                                 storage=parse_storage("int8-disk", "image.hnsw=off")))
    return root


def test_list_table_and_json(store_dir: Path) -> None:
    result = runner.invoke(app, ["collections", "list", "--qdrant", str(store_dir)])
    assert result.exit_code == 0, result.output
    assert "gs10m" in result.output and "runs/demo/model" in result.output and "image 0.4" in result.output
    result = runner.invoke(app, ["collections", "list", "--qdrant", str(store_dir), "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [(c["name"], c["points"], c["record"]["dim"]) for c in listed] == [("empty", 0, 4), ("gs10m", 7, 8)]


def test_store_defaults_to_the_settings(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCL_VDB_STORE", str(store_dir))
    result = runner.invoke(app, ["collections", "list", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_list_of_an_empty_store_says_how_to_fill_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["collections", "list", "--qdrant", str(tmp_path / "nothing")])
    assert result.exit_code == 0 and "no collections" in result.output and "gcl-vdb ingest" in result.output


def test_info_shows_the_record_and_corpus_sizes(store_dir: Path) -> None:
    result = runner.invoke(app, ["collections", "info", "gs10m", "--qdrant", str(store_dir), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["points"] == 7 and info["corpus_points"] == {"1": 4, "2": 3}
    assert info["record"]["field_weights"] == {"image": 0.4, "title": 0.6}
    assert info["record"]["ingest"] == {"batch_size": 64}
    table = runner.invoke(app, ["collections", "info", "gs10m", "--qdrant", str(store_dir)])
    assert table.exit_code == 0 and "/data/gs" in table.output and "corpus 2 points" in table.output
    assert "float32 in RAM, HNSW m default" in table.output


def test_info_shows_the_storage(store_dir: Path) -> None:
    info = json.loads(runner.invoke(app, ["collections", "info", "empty", "--qdrant", str(store_dir), "--json"]).stdout)
    storage = info["record"]["storage"]
    assert storage["name"] == "int8-disk+" and storage["oversampling"] == 2.0
    assert storage["vectors"]["image"] == {"datatype": "float32", "on_disk": True, "quantization": "int8",
                                           "quantile": 0.99, "always_ram": True, "hnsw_m": 0,
                                           "hnsw_ef_construct": None}
    table = runner.invoke(app, ["collections", "info", "empty", "--qdrant", str(store_dir)])
    assert table.exit_code == 0 and "int8-disk+" in table.output
    assert all(f"storage {row}" in table.output for row in ("image", "title", "fused", "search"))
    assert "no HNSW" in table.output  # the rows' full text: test_store_storage.py


def test_unknown_collection_is_one_line_naming_the_existing_ones(store_dir: Path) -> None:
    result = runner.invoke(app, ["collections", "info", "gs1m", "--qdrant", str(store_dir)])
    assert result.exit_code == 1
    assert "collection 'gs1m' not found" in result.output and "existing collections: empty, gs10m" in result.output
    assert "Traceback" not in result.output


def test_drop_asks_first_unless_yes(store_dir: Path) -> None:
    declined = runner.invoke(app, ["collections", "drop", "gs10m", "--qdrant", str(store_dir)], input="n\n")
    assert declined.exit_code == 1 and "7 points" in declined.output and "kept collection gs10m" in declined.output
    assert (store_dir / "gs10m").is_dir()
    accepted = runner.invoke(app, ["collections", "drop", "gs10m", "--qdrant", str(store_dir)], input="y\n")
    assert accepted.exit_code == 0 and "dropped collection gs10m (7 points)" in accepted.output
    assert not (store_dir / "gs10m").exists()
    forced = runner.invoke(app, ["collections", "drop", "empty", "--qdrant", str(store_dir), "--yes"])
    assert forced.exit_code == 0 and not (store_dir / "empty").exists()
    again = runner.invoke(app, ["collections", "drop", "empty", "--qdrant", str(store_dir), "--yes"])
    assert again.exit_code == 1 and "not found" in again.output


def test_help_has_examples() -> None:
    for command in ("list", "info", "drop", "add-bm25"):
        result = runner.invoke(app, ["collections", command, "--help"])
        assert result.exit_code == 0 and "Example: gcl-vdb collections" in result.output


def test_add_bm25_upgrades_a_collection_made_before_keyword_search(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with open_store(root) as store:
        store.create_collection(CollectionRecord("old", model_ref="runs/demo/model", dim=8, bm25=None))
        store.upsert("old", [PointRecord(f"p{i}", {"fused": np.ones(8)},
                                         product_payload(f"p{i}", ["red shoes", "blue bag", ""][i % 3], None, 1))
                             for i in range(9)])
    info = runner.invoke(app, ["collections", "info", "old", "--qdrant", str(root)])
    assert "made before keyword" in " ".join(info.output.split()) and "add-bm25" in info.output
    query = ["query", "red", "--collection", "old", "--qdrant", str(root), "--mode", "bm25"]
    refused = runner.invoke(app, query)
    assert refused.exit_code == 1 and "gcl-vdb collections add-bm25 old" in " ".join(refused.output.split())
    added = runner.invoke(app, ["collections", "add-bm25", "old", "--qdrant", str(root)])
    assert added.exit_code == 0, added.output
    assert "added BM25 to collection old (9 points)" in " ".join(added.output.split())
    found = runner.invoke(app, [*query, "--json"])
    assert found.exit_code == 0, found.output
    assert sorted(h["product_id"] for h in json.loads(found.stdout)["hits"]) == ["p0", "p3", "p6"]
    again = runner.invoke(app, ["collections", "add-bm25", "old", "--qdrant", str(root), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["added"] is False
    info = runner.invoke(app, ["collections", "info", "old", "--qdrant", str(root), "--json"])
    assert json.loads(info.stdout)["record"]["bm25"] == {"k": 1.2, "b": 0.75, "avg_len": 12.0, "language": "english"}
    missing = runner.invoke(app, ["collections", "add-bm25", "nope", "--qdrant", str(root)])
    assert missing.exit_code == 1 and "not found" in missing.output
