"""A collection records its model's identity (weights hash, dim, preprocessing), and every command that
embeds for it — ingest (resume), query, evaluate — refuses another model, even one of the same dim,
naming both. The ONNX bundle of a model and the model itself are one identity. Collections created before
identities were recorded accept only their own model reference, and a re-run ingest records it.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.encoders import load_encoder
from gcl_vectordb.encoders.models import create_clip_model
from gcl_vectordb.errors import ModelMismatch
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.search import search_products
from gcl_vectordb.search.query import cached_encoder
from gcl_vectordb.store import open_store
from tests.ingest_fixtures import ingest_args, ingest_harness, run_harness

runner = CliRunner()


@pytest.fixture(scope="module")
def other_micro(tmp_path_factory: pytest.TempPathFactory) -> str:
    """gcl-micro with other weights: the same dim (32) and preprocessing, another model."""
    model = create_clip_model("gcl-micro").model
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        state = {name: tensor + 0.05 * torch.randn(tensor.shape, generator=generator) if tensor.is_floating_point()
                 else tensor for name, tensor in model.state_dict().items()}
    path = tmp_path_factory.mktemp("other-micro") / "weights.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))
    return f"gcl-micro:{path}"


@pytest.fixture(scope="module")
def other_micro_bundle(tmp_path_factory: pytest.TempPathFactory, other_micro: str) -> Path:
    from exporters import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("other-bundle") / "gcl-micro"
    export_bundle(ExportConfig(out=out, model_ref=other_micro))
    return out


def _one_line(result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_resuming_an_ingest_with_another_model_of_the_same_dim_is_refused_naming_both(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, other_micro: str, subprocess_env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    args = ingest_args(tiny_gs, micro_bundle, store, batch_size=4, workers=0)
    harness = ingest_harness(tmp_path)
    killed = run_harness(harness, signal.SIGKILL, 20, args, subprocess_env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with open_store(store) as opened:
        before = opened.count("gs")
        record = opened.get_record("gs")
    assert record.identity == load_encoder(str(micro_bundle), towers=("text",)).identity

    other = load_encoder(other_micro, towers=("text",)).identity
    assert other.dim == record.dim and other.preprocessing == record.identity.preprocessing
    line = _one_line(runner.invoke(app, ingest_args(tiny_gs, other_micro, store, batch_size=4, workers=0)))
    assert f"error: model {other.short()} has other weights than the model that built collection 'gs': " \
           f"{record.identity.short()}" in line
    with open_store(store) as opened:
        assert opened.count("gs") == before  # nothing written by the other model

    finished = run_harness(harness, 0, 0, [*args, "--json"], subprocess_env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout)["points_total"] == 55


def test_query_and_evaluate_refuse_when_the_collections_model_files_were_replaced(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, other_micro_bundle: Path
) -> None:
    model = Path(shutil.copytree(micro_bundle, tmp_path / "model"))
    store = tmp_path / "store"
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(model), store=str(store), workers=0))
    on = ["--collection", "gs", "--qdrant", str(store)]
    assert runner.invoke(app, ["query", "red dress", *on]).exit_code == 0
    shutil.rmtree(model)
    shutil.copytree(other_micro_bundle, model)  # another export at the same path: same dim, other weights
    cached_encoder.cache_clear()  # as a new process would, load the files again
    for command in (["query", "red dress", *on], ["evaluate", "--split", "novel-doc", "--k", "12", *on]):
        line = _one_line(runner.invoke(app, command))
        assert "has other weights than the model that built collection 'gs'" in line and str(model) in line


def test_a_bundle_queries_the_collection_its_torch_model_built_and_nothing_else(
    ingested: Path, other_micro: str
) -> None:
    with open_store(ingested) as store:
        same = search_products(store, "gs", "red dress", encoder=load_encoder("gcl-micro"))  # the bundle's source
        assert len(same.hits) == 10
        with pytest.raises(ModelMismatch, match=r"gcl-micro:.*has other weights"):
            search_products(store, "gs", "red dress", encoder=load_encoder(other_micro))


def _strip_identity_and_progress(store: Path) -> None:
    """Make the record look like one written before gcl-vdb recorded identities and ingest progress."""
    path = store / "gs" / "collection.json"
    data = json.loads(path.read_text())
    del data["identity"], data["progress"]
    path.write_text(json.dumps(data))


def test_a_collection_from_before_identities_accepts_its_own_model_ref_and_a_rerun_records_it(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, other_micro: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    config = IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=str(store), workers=0)
    ingest_dataset(config)
    _strip_identity_and_progress(store)
    info = json.loads(runner.invoke(app, ["collections", "info", "gs", "--qdrant", str(store), "--json"]).stdout)
    assert info["record"]["identity"] is None and info["status"].startswith("unknown (created before")

    with open_store(store) as opened:
        assert len(search_products(opened, "gs", "red dress").hits) == 10  # its own model_ref: trusted
    assert "records no model identity" in caplog.text
    line = _one_line(runner.invoke(app, ["evaluate", "--collection", "gs", "--qdrant", str(store), "--k", "12"]))
    assert "is not completely ingested: unknown (created before" in line
    with pytest.raises(ModelMismatch, match=r"records no model identity .* not gcl-micro:"):
        ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=other_micro, store=str(store), workers=0))

    again = ingest_dataset(config)  # a no-op on the points; records the identity and the completed ingest
    assert again.points_written == 0 and again.points_total == 55
    with open_store(store) as opened:
        record = opened.get_record("gs")
    assert record.identity == load_encoder(str(micro_bundle), towers=("text",)).identity
    assert record.progress is not None and record.progress.complete
    result = runner.invoke(app, ["evaluate", "--collection", "gs", "--qdrant", str(store), "--k", "12", "--json"])
    assert result.exit_code == 0, result.output
    assert np.isfinite(json.loads(result.stdout)["splits"]["novel-doc"]["metrics"]["headline"]["ndcg@10"])
