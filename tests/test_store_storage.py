"""Storage options (`gcl_vectordb.store.storage`): presets, `key=value` settings, validation with one-line
errors, the JSON form in the collection record, and the engine configs built from them."""

from __future__ import annotations

import json

import pytest
import qdrant_edge as edge

from gcl_vectordb.errors import ConfigError, StoreError
from gcl_vectordb.store import CollectionRecord, schema
from gcl_vectordb.store.storage import (
    PRESETS,
    VECTOR_NAMES,
    Datatype,
    Quantization,
    StorageOptions,
    VectorStorage,
    parse_storage,
)


def test_presets() -> None:
    assert parse_storage(None) == StorageOptions() == PRESETS["ram"]
    assert not PRESETS["ram"].quantized and PRESETS["float16"].quantized is False
    int8 = StorageOptions.preset("int8-disk")
    for vector in int8.vectors.values():
        assert vector.on_disk and vector.always_ram and vector.quantization is Quantization.int8
        assert vector.quantile == 0.99 and vector.indexed
    assert int8.quantized and int8.rescore and int8.oversampling == 2.0
    assert StorageOptions.preset("binary-disk").oversampling == 6.0
    assert all(v.datatype is Datatype.float16 for v in StorageOptions.preset("float16").vectors.values())
    assert [name for name, options in PRESETS.items() if options.name != name] == []


def test_settings_change_one_vector_or_all() -> None:
    storage = parse_storage("int8-disk", "image.hnsw=off, title.hnsw=off, fused.hnsw_m=32, oversampling=4")
    assert [storage.vectors[v].indexed for v in VECTOR_NAMES] == [False, False, True]
    assert storage.vectors["fused"].hnsw_m == 32 and storage.oversampling == 4.0
    assert storage.name == "int8-disk+"
    assert parse_storage("ram", "datatype=float16").vectors == PRESETS["float16"].vectors
    assert parse_storage("int8-disk", "quantization=none").vectors["title"] == VectorStorage(on_disk=True)
    assert parse_storage("ram", "hnsw=off").with_settings("fused.hnsw=on").vectors["fused"].hnsw_m is None
    assert parse_storage("ram", "on_disk=false").name == "ram"  # no change, no `+`
    assert parse_storage("int8-disk", "rescore=no").rescore is False


@pytest.mark.parametrize("preset, settings, message", [
    ("int9-disk", None, "unknown storage preset 'int9-disk' — use one of: ram, float16, int8-disk, binary-disk"),
    ("ram", "colour=red", "unknown storage option 'colour'"),
    ("ram", "poster.on_disk=true", "unknown storage option 'poster.on_disk'"),
    ("ram", "quantization=int4", "unknown storage quantization 'int4' — use one of: none, int8, binary"),
    ("ram", "datatype=bfloat16", "unknown storage datatype 'bfloat16'"),
    ("ram", "on_disk=maybe", "on_disk must be true or false"),
    ("ram", "hnsw_m=-1", "hnsw_m must be an integer ≥ 0"),
    ("ram", "hnsw_m=many", "hnsw_m must be an integer"),
    ("ram", "hnsw=sometimes", "hnsw must be on or off"),
    ("ram", "hnsw_ef_construct=2", "hnsw_ef_construct must be an integer ≥ 4"),
    ("ram", "quantile=0.9", "quantile applies to int8 quantization only"),
    ("int8-disk", "quantile=1.5", "quantile must be in [0.5, 1]"),
    ("int8-disk", "oversampling=0.5", "oversampling must be a number in [1, 100]"),
    ("ram", "on_disk", "expected key=value pairs"),
])
def test_bad_storage_is_a_one_line_error(preset: str, settings: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_storage(preset, settings)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_storage_is_typed() -> None:
    with pytest.raises(TypeError, match="storage must be StorageOptions"):
        CollectionRecord("c", model_ref="m", dim=4, storage="int8-disk")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a VectorStorage for each of image, title, fused"):
        StorageOptions({"fused": VectorStorage()})


@pytest.mark.parametrize("preset", list(PRESETS))
def test_storage_json_round_trip(preset: str) -> None:
    storage = parse_storage(preset, "image.hnsw=off,fused.hnsw_ef_construct=64")
    record = CollectionRecord("c", model_ref="m", dim=4, storage=storage)
    text = json.dumps(schema.record_to_json(record))
    assert json.loads(text)["storage"]["vectors"]["image"]["hnsw_m"] == 0
    assert schema.record_from_json(json.loads(text), "test") == record


def test_a_record_without_storage_is_ram_and_a_bad_one_is_unreadable() -> None:
    data = schema.record_to_json(CollectionRecord("c", model_ref="m", dim=4))
    del data["storage"]
    assert schema.record_from_json(data, "test").storage == PRESETS["ram"]
    data["storage"] = {"name": "x", "vectors": {"fused": {}}, "oversampling": 2.0, "rescore": True}
    with pytest.raises(StoreError, match="unreadable"):
        schema.record_from_json(data, "test")


def test_describe_names_every_choice() -> None:
    rows = parse_storage("int8-disk", "image.hnsw=off,title.hnsw_m=8").describe()
    assert rows["image"] == "float32 on disk, int8 copy in RAM (quantile 0.99), no HNSW graph (searches scan)"
    assert rows["title"] == "float32 on disk, int8 copy in RAM (quantile 0.99), HNSW m 8"
    assert rows["search"] == "approximate: rescore with oversampling 2; exact: original vectors"
    assert StorageOptions().describe() == {v: "float32 in RAM, HNSW m default" for v in VECTOR_NAMES}


def test_edge_config_per_vector() -> None:
    storage = parse_storage("int8-disk", "image.hnsw=off,fused.datatype=float16,title.quantization=binary")
    config = schema.edge_config(8, storage, {"m": 4, "full_scan_threshold_kb": 1}, indexing_threshold_kb=1)
    image, title, fused = (config.vectors[v] for v in VECTOR_NAMES)
    assert image.memory == edge.Memory.Cold and image.hnsw_config.m == 0
    assert image.hnsw_config.full_scan_threshold == 1 and image.hnsw_config.ef_construct == 100
    assert image.quantization_config.quantile == pytest.approx(0.99)  # the engine keeps a float32
    assert image.quantization_config.memory == edge.Memory.Pinned
    assert isinstance(title.quantization_config, edge.BinaryQuantizationConfig) and title.hnsw_config is None
    assert fused.datatype == edge.VectorStorageDatatype.Float16
    assert config.hnsw_config.m == 4 and config.optimizers.indexing_threshold == 1
    plain = schema.edge_config(8, StorageOptions(), None, None).vectors["fused"]
    assert plain.memory is None and plain.quantization_config is None and plain.datatype is None
