"""Ingest end to end (library): counts, vectors against a per-product reference, payloads, re-runs, rejects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.data import open_dataset
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, FieldWeights
from gcl_vectordb.encoders import load_encoder
from gcl_vectordb.errors import ConfigError, DataError, ModelMismatch
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.store import open_store
from tests.ingest_fixtures import all_product_ids, copy_dataset, edit_corpus, reference_vectors, stored_points


def _config(data: Path, bundle: Path, store: Path, **overrides) -> IngestConfig:
    values = {"collection": "gs", "data": data, "model_ref": str(bundle), "store": str(store),
              "batch_size": 8, "workers": 0} | overrides
    return IngestConfig(**values)


def _vectors(store: Path, ids: list[str]) -> dict[str, dict[str, np.ndarray]]:
    return {pid: dict(p.vectors) for pid, p in stored_points(str(store), "gs", ids).items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_ingest_stores_every_product_with_the_reference_vectors(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                                               workers: int) -> None:
    report = ingest_dataset(_config(tiny_gs, micro_bundle, tmp_path / "store", workers=workers))
    dataset = open_dataset(tiny_gs)
    sizes = {c: dataset.count_products(c) for c in (1, 2)}
    assert report.created and report.points_written == report.points_total == sum(sizes.values())
    assert {c.corpus: (c.written, c.done, c.complete) for c in report.corpora} == {
        c: (n, n, True) for c, n in sizes.items()}
    assert report.rejects == {} and report.points_present == 0 and report.index_built and report.workers == workers

    expected = reference_vectors(tiny_gs, load_encoder(str(micro_bundle)), DEFAULT_FIELD_WEIGHTS)
    stored = stored_points(str(tmp_path / "store"), "gs", list(expected))
    assert set(stored) == set(expected)
    for pid, point in stored.items():
        assert set(point.vectors) == {"image", "title", "fused"}
        for name, vector in expected[pid].items():
            np.testing.assert_allclose(point.vectors[name], vector, atol=2e-6, err_msg=f"{pid} {name}")
    product = next(iter(dataset.iter_products(2, batch_size=1)))[0]
    payload = stored[product.product_id].payload
    assert payload == {**product.extra, "product_id": product.product_id, "title": product.title, "corpus": 2,
                       "image": str(product.image_path.relative_to(dataset.images_dir))}
    with open_store(tmp_path / "store") as store:
        record = store.get_record("gs")
        assert store.count("gs", corpus=1) == sizes[1] and store.count("gs", corpus=2) == sizes[2]
    assert (record.model_ref, record.dim, record.field_weights) == (str(micro_bundle), 32, DEFAULT_FIELD_WEIGHTS)
    assert record.dataset_root == str(tiny_gs) and record.ingest["images_dir"] == str(dataset.images_dir)


def test_a_second_run_changes_nothing_and_reports_everything_as_present(tmp_path: Path, tiny_gs: Path,
                                                                      micro_bundle: Path) -> None:
    config = _config(tiny_gs, micro_bundle, tmp_path / "store")
    first = ingest_dataset(config)
    ids = all_product_ids(tiny_gs)
    before = _vectors(tmp_path / "store", ids)
    state = first.state_file.read_text()

    again = ingest_dataset(config)
    assert (again.points_written, again.points_present, again.points_total) == (0, first.points_total,
                                                                                first.points_total)
    assert not again.created and again.resumed_from == {1: 28, 2: 27} and again.new_rejects == 0
    assert again.state_file.read_text() == state

    shutil.rmtree(first.state_file.parent)  # state lost: the store itself says what is there
    third = ingest_dataset(config)
    assert (third.points_written, third.points_present, third.resumed_from) == (0, first.points_total, {})
    after = _vectors(tmp_path / "store", ids)
    for pid, vectors in before.items():
        for name, vector in vectors.items():
            np.testing.assert_array_equal(after[pid][name], vector)


def _damage(root: Path) -> dict[str, str]:
    """Corrupt, truncate and delete images, leave a product with neither title nor image, repeat an id,
    drop an image reference, drop a title. Returns {product_id: what was done}."""
    dataset = open_dataset(root)
    products = next(iter(dataset.iter_products(1, batch_size=8)))
    products[0].image_path.write_bytes(b"this is not a JPEG")
    data = products[1].image_path.read_bytes()
    products[1].image_path.write_bytes(data[: len(data) // 2])
    products[2].image_path.unlink()
    done = {products[0].product_id: "corrupt", products[1].product_id: "truncated",
            products[2].product_id: "deleted", products[3].product_id: "empty",
            products[4].product_id: "repeated", products[5].product_id: "no image",
            products[6].product_id: "no title"}

    def edit(entries):
        fields = dict(entries)
        fields[products[3].product_id]["title"] = "  "
        del fields[products[3].product_id]["image_local"]
        del fields[products[5].product_id]["image_local"]
        fields[products[6].product_id]["title"] = None
        return [(k, fields[k]) for k, _ in entries] + [(products[4].product_id, {"title": "a second copy"})]

    edit_corpus(root, 1, edit)
    return done


def test_rejected_products_go_to_the_rejects_file_and_the_rest_is_ingested(tmp_path: Path, tiny_gs: Path,
                                                                          micro_bundle: Path) -> None:
    root = copy_dataset(tiny_gs, tmp_path)
    damaged = _damage(root)
    ids = {v: k for k, v in damaged.items()}
    report = ingest_dataset(_config(root, micro_bundle, tmp_path / "store", workers=2))
    assert report.rejects == {"corrupt-image": 2, "missing-image": 1, "empty-title": 1, "duplicate-product-id": 1}
    assert report.new_rejects == 5 and report.points_total == 28 + 27 - 4
    lines = [json.loads(line) for line in report.rejects_file.read_text().splitlines()]
    by_product = {(e["product_id"], e["reason"]): e for e in lines}
    assert set(by_product) == {(ids["corrupt"], "corrupt-image"), (ids["truncated"], "corrupt-image"),
                               (ids["deleted"], "missing-image"), (ids["empty"], "empty-title"),
                               (ids["repeated"], "duplicate-product-id")}
    repeated = by_product[(ids["repeated"], "duplicate-product-id")]
    assert (repeated["source"], repeated["row"], repeated["corpus"]) == ("corpus_1.json", 29, 1)
    assert "not a JPEG" not in by_product[(ids["corrupt"], "corrupt-image")]["detail"]  # the decoder's words
    assert str(root) in by_product[(ids["deleted"], "missing-image")]["detail"]

    stored = stored_points(str(tmp_path / "store"), "gs", list(damaged))
    assert set(stored) == {ids["repeated"], ids["no image"], ids["no title"]}
    assert stored[ids["repeated"]].payload["title"] != "a second copy"  # the first one is kept
    title_only = stored[ids["no image"]]
    assert set(title_only.vectors) == {"title", "fused"} and title_only.payload["image"] is None
    np.testing.assert_allclose(title_only.vectors["fused"], title_only.vectors["title"], atol=1e-6)
    image_only = stored[ids["no title"]]  # the official reader gives a null title weight 0: image alone
    assert set(image_only.vectors) == {"image", "fused"} and image_only.payload["title"] is None
    np.testing.assert_allclose(image_only.vectors["fused"], image_only.vectors["image"], atol=1e-6)

    again = ingest_dataset(_config(root, micro_bundle, tmp_path / "store"))
    assert (again.retried, again.recovered, again.new_rejects, again.points_written) == (4, 0, 0, 0)
    assert again.rejects == report.rejects and again.points_present == again.points_total == report.points_total
    assert [json.loads(line) for line in report.rejects_file.read_text().splitlines()] == lines


def test_an_existing_collection_refuses_another_dataset_weights_or_model(tmp_path: Path, tiny_gs: Path,
                                                                        micro_bundle: Path, tiny_bundle: Path) -> None:
    ingest_dataset(_config(tiny_gs, micro_bundle, tmp_path / "store", build_index=False))
    with pytest.raises(ConfigError, match="was built from .* not .*gcl-vdb collections drop gs"):
        ingest_dataset(_config(copy_dataset(tiny_gs, tmp_path), micro_bundle, tmp_path / "store"))
    with pytest.raises(ConfigError, match="field weights image=0.9,title=0.1, not image=0.5,title=0.5"):
        ingest_dataset(_config(tiny_gs, micro_bundle, tmp_path / "store", field_weights=FieldWeights(image=0.5, title=0.5)))
    with pytest.raises(ModelMismatch, match="embeds in 128 dimensions but collection 'gs' holds 32-dim"):
        ingest_dataset(_config(tiny_gs, tiny_bundle, tmp_path / "store"))


def test_config_errors_are_clear(tmp_path: Path, tiny_gs: Path) -> None:
    with pytest.raises(ConfigError, match="shards and replicas need a Qdrant server"):
        IngestConfig(collection="gs", data=tiny_gs, model_ref="m", store=str(tmp_path), shards=2)
    with pytest.raises(ConfigError, match="invalid collection name"):
        IngestConfig(collection="../x", data=tiny_gs, model_ref="m")
    with pytest.raises(DataError, match="holds no Marqo-GS dataset"):
        ingest_dataset(IngestConfig(collection="gs", data=tmp_path, model_ref="m", store=str(tmp_path / "s")))


def test_server_backend_through_local_mode(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gcl_vectordb.store.server import ServerStore

    calls = []
    create, optimize = ServerStore.create_collection, ServerStore.optimize
    monkeypatch.setattr(ServerStore, "create_collection",
                        lambda self, record, **kw: calls.append(("create", kw)) or create(self, record, **kw))
    monkeypatch.setattr(ServerStore, "optimize",
                        lambda self, name, **kw: calls.append(("optimize", name)) or optimize(self, name, **kw))
    monkeypatch.chdir(tmp_path)  # the server's ingest state goes under ./gcl-vdb-work/ingest/<collection>
    location = f"local:{tmp_path / 'qdrant'}"
    report = ingest_dataset(_config(tiny_gs, micro_bundle, location))
    assert report.points_written == report.points_total == 55
    # indexing deferred while loading, restored by optimize() at the end
    assert calls == [("create", {"shards": 1, "replicas": 1, "bulk_load": True}), ("optimize", "gs")]
    assert report.state_file == Path("gcl-vdb-work/ingest/gs/state.json") and report.state_file.is_file()
    again = ingest_dataset(_config(tiny_gs, micro_bundle, location))
    assert (again.points_written, again.points_present) == (0, 55)
    expected = reference_vectors(tiny_gs, load_encoder(str(micro_bundle)), DEFAULT_FIELD_WEIGHTS)
    stored = stored_points(location, "gs", list(expected))
    for pid, point in stored.items():
        np.testing.assert_allclose(point.vectors["fused"], expected[pid]["fused"], atol=2e-6)


def test_parquet_layout_with_embedded_images(tmp_path: Path, micro_bundle: Path) -> None:
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    root = tmp_path / "pq"
    synthesize(SynthConfig(out=root, products=60, queries=12, image_size=32, seed=7, results_per_query=10,
                           format="parquet"))
    report = ingest_dataset(_config(root, micro_bundle, tmp_path / "store", workers=1))
    dataset = open_dataset(root)
    assert report.points_total == dataset.count_products(1) + dataset.count_products(2) and report.rejects == {}
    expected = reference_vectors(root, load_encoder(str(micro_bundle)), DEFAULT_FIELD_WEIGHTS)
    stored = stored_points(str(tmp_path / "store"), "gs", list(expected))
    for pid, point in stored.items():
        assert point.payload["image"] is None  # the bytes live in the parquet files
        np.testing.assert_allclose(point.vectors["image"], expected[pid]["image"], atol=2e-6)
