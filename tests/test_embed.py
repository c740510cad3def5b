"""`gcl-vdb embed` → `gcl-vdb ingest --embeddings`: sharded embedding, then a bulk load without a model.

The reference is the one-shot `ingest`: embedding in N shards and loading them must give the same
collection (ids, payloads, vectors, rejects), whatever N, whatever stops on the way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.data import open_dataset
from gcl_vectordb.data.records import Partition, RejectLog
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.errors import ConfigError, DataError, PartialCollection
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.ingest.embed import LOCK_FILE, EmbedConfig, embed_dataset
from gcl_vectordb.ingest.shard_format import MANIFEST_FILE, file_sha256, read_manifest
from gcl_vectordb.store import SearchRequest, open_store, require_complete
from gcl_vectordb.store.lock import hold
from tests.encoder_fixtures import copy_bundle
from tests.ingest_fixtures import (
    all_product_ids,
    copy_dataset,
    edit_corpus,
    ingest_harness,
    run_harness,
    stored_points,
    wait_until_gone,
)

runner = CliRunner()


def _embed(data: Path, bundle: Path, out: Path, shards: int = 1, **overrides) -> list:
    return [embed_dataset(EmbedConfig(**({"data": data, "model_ref": str(bundle), "out": out,
                                          "partition": Partition(i, shards), "workers": 0, "batch_size": 8}
                                         | overrides)))
            for i in range(shards)]


def _load(embeddings: Path, store: Path | str, **overrides):
    return ingest_dataset(IngestConfig(**({"collection": "gs", "embeddings": embeddings, "store": str(store),
                                           "batch_size": 8} | overrides)))


def _one_shot(data: Path, bundle: Path, store: Path):
    return ingest_dataset(IngestConfig(collection="gs", data=data, model_ref=str(bundle), store=str(store),
                                       batch_size=8, workers=0))


def _damaged(tiny_gs: Path, tmp_path: Path) -> Path:
    """tiny_gs with a corrupt image, an image-only product (null title), a title-only product, one with
    neither (rejected) and an id in both corpora."""
    root = copy_dataset(tiny_gs, tmp_path)
    products = next(iter(open_dataset(root).iter_products(1, batch_size=8)))
    products[0].image_path.write_bytes(b"not a JPEG")

    def corpus_1(entries):
        fields = dict(entries)
        fields[products[1].product_id]["title"] = None
        del fields[products[2].product_id]["image_local"]
        del fields[products[4].product_id]["image_local"], fields[products[4].product_id]["title"]
        return entries

    def corpus_2(entries):
        return [*entries, (products[3].product_id, {"title": "the same id in corpus 2"})]

    edit_corpus(root, 1, corpus_1)
    edit_corpus(root, 2, corpus_2)
    return root


def _rejects(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda e: json.dumps(e))


def _assert_same_collection(got: Path, want: Path, data: Path) -> None:
    ids = all_product_ids(data)
    a, b = stored_points(str(got), "gs", ids), stored_points(str(want), "gs", ids)
    assert set(a) == set(b) and b
    with open_store(got) as store:
        assert store.count("gs") == len(b)
    for pid, point in b.items():
        assert a[pid].payload == point.payload
        assert set(a[pid].vectors) == set(point.vectors)
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(a[pid].vectors[name], vector, atol=1e-6, err_msg=f"{pid} {name}")


@pytest.mark.parametrize("shards", [1, 3])
def test_shards_load_into_the_collection_the_one_shot_ingest_builds(tmp_path: Path, tiny_gs: Path,
                                                                    micro_bundle: Path, shards: int) -> None:
    root = _damaged(tiny_gs, tmp_path)
    reports = _embed(root, micro_bundle, tmp_path / "emb", shards)
    assert [r.complete for r in reports] == [True] * shards
    assert [r.manifest for r in reports] == [None] * (shards - 1) + [tmp_path / "emb" / MANIFEST_FILE]
    assert reports[0].missing_shards == tuple(range(1, shards)) and reports[0].provider == "CPUExecutionProvider"
    manifest = read_manifest(tmp_path / "emb")
    for corpus in (1, 2):  # every product of a corpus in one part only
        ids = [set(pq.read_table(tmp_path / "emb" / f.path, columns=["product_id"]).column(0).to_pylist())
               for f in manifest.files if f.corpus == corpus]
        assert sum(map(len, ids)) == len(set().union(*ids)) == manifest.rows(corpus)

    loaded = _load(tmp_path / "emb", tmp_path / "store")
    reference = _one_shot(root, micro_bundle, tmp_path / "reference")
    assert loaded.created and loaded.points_total == reference.points_total == 28 + 27 + 1 - 3
    assert loaded.rejects == reference.rejects == {"corrupt-image": 1, "empty-title": 1, "duplicate-product-id": 1}
    assert _rejects(loaded.rejects_file) == _rejects(reference.rejects_file)
    _assert_same_collection(tmp_path / "store", tmp_path / "reference", root)
    with open_store(tmp_path / "store") as store, open_store(tmp_path / "reference") as other:
        record, want = store.get_record("gs"), other.get_record("gs")
    assert (record.model_ref, record.dim, record.field_weights, record.dataset_root) == (
        want.model_ref, want.dim, want.field_weights, want.dataset_root)
    assert record.identity == want.identity and record.identity is not None
    assert record.progress is not None and record.progress.complete
    assert record.ingest["embeddings"] == str(tmp_path / "emb")
    with open_store(tmp_path / "store") as store, open_store(tmp_path / "reference") as other:
        for words in ("summer dress", "leather boots", "red"):  # the titles' BM25 vectors came along
            request = SearchRequest(None, mode="bm25", text=words, limit=100)  # all matches: no cut in a tie
            got, expected = store.search("gs", request), other.search("gs", request)
            # (equal scores come back in storage order, which loading shards in parallel may change)
            assert sorted((-round(h.score, 4), h.product_id) for h in got) == sorted(
                (-round(h.score, 4), h.product_id) for h in expected)

    again = _load(tmp_path / "emb", tmp_path / "store")  # idempotent: nothing written, every row present
    assert (again.points_written, again.points_present, again.new_rejects) == (0, loaded.points_total, 0)


def test_partitions_split_products_and_rejects_once_in_both_layouts(tmp_path: Path, tiny_gs: Path) -> None:
    parquet = tmp_path / "pq"
    synthesize(SynthConfig(out=parquet, products=60, queries=12, image_size=32, seed=7, results_per_query=10,
                           format="parquet"))
    for root in (_damaged(tiny_gs, tmp_path), parquet):
        dataset = open_dataset(root)
        for corpus in dataset.corpora:
            everything, all_rejects = RejectLog(), []
            whole = [p.product_id for b in dataset.iter_products(corpus, rejects=everything) for p in b]
            parts, rejects = [], []
            for index in range(3):
                log = RejectLog()
                parts.append([p.product_id for b in dataset.iter_products(
                    corpus, rejects=log, partition=Partition(index, 3)) for p in b])
                rejects += [r.product_id for r in log]
            all_rejects = [r.product_id for r in everything]
            assert sorted(sum(parts, [])) == sorted(whole) and all(parts)
            assert sorted(rejects) == sorted(all_rejects)
            # the cursor of a part counts that part's entries (rejected ones included)
            positions = [(b.end, p.product_id) for b in dataset.product_batches(corpus, batch_size=1,
                                                                                partition=Partition(1, 3))
                         for p in b.products]
            resumed = [p.product_id for b in dataset.product_batches(corpus, start=3, partition=Partition(1, 3))
                       for p in b.products]
            assert resumed == [pid for end, pid in positions if end > 3] and 0 < len(resumed) < len(parts[1])


@pytest.mark.parametrize("text", ["3", "1/", "a/2", "2/2", "-1/2", "0/0"])
def test_a_malformed_or_impossible_shard_is_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        Partition.parse(text)


def test_float16_shards_are_half_the_size_and_close(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    _embed(tiny_gs, micro_bundle, tmp_path / "fp32")
    _embed(tiny_gs, micro_bundle, tmp_path / "fp16", dtype="float16")
    sizes = [sum(f.bytes for f in read_manifest(tmp_path / name).files) for name in ("fp32", "fp16")]
    assert sizes[1] < 0.75 * sizes[0]
    _load(tmp_path / "fp32", tmp_path / "a")
    _load(tmp_path / "fp16", tmp_path / "b")
    ids = all_product_ids(tiny_gs)
    a, b = stored_points(str(tmp_path / "a"), "gs", ids), stored_points(str(tmp_path / "b"), "gs", ids)
    for pid, point in a.items():
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(b[pid].vectors[name], vector, atol=2e-3)


def test_shards_load_into_a_server_collection_too(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the server's ingest state goes under ./gcl-vdb-work/ingest/<collection>
    _embed(tiny_gs, micro_bundle, tmp_path / "emb", shards=2)
    report = _load(tmp_path / "emb", f"local:{tmp_path / 'qdrant'}")  # qdrant-client's local mode
    assert report.points_written == report.points_total == 55
    _load(tmp_path / "emb", tmp_path / "embedded")
    ids = all_product_ids(tiny_gs)
    server, embedded = stored_points(f"local:{tmp_path / 'qdrant'}", "gs", ids), stored_points(str(tmp_path / "embedded"), "gs", ids)
    assert set(server) == set(embedded)
    for pid, point in embedded.items():
        assert server[pid].payload == point.payload
        np.testing.assert_allclose(server[pid].vectors["fused"], point.vectors["fused"], atol=1e-6)


def test_a_folder_copied_together_without_a_manifest_still_loads(tmp_path: Path, tiny_gs: Path,
                                                                  micro_bundle: Path) -> None:
    _embed(tiny_gs, micro_bundle, tmp_path / "emb", shards=2)
    (tmp_path / "emb" / MANIFEST_FILE).unlink()  # shard folders gathered from two machines
    assert _load(tmp_path / "emb", tmp_path / "store").points_total == 55


# ---- bad input: one clear line, nothing half-written


def _cli_error(args: list[str], exit_code: int = 1) -> str:
    """The error of a failing command: one line (after any progress bar drawn on the way), no traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 or exit_code == 2, result.output
    return result.output


def _load_args(emb: Path, store: Path) -> list[str]:
    return ["ingest", "--embeddings", str(emb), "--qdrant", str(store), "--collection", "gs"]


@pytest.fixture
def shards(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> Path:
    """A complete two-shard embeddings folder of tiny_gs that a test may damage."""
    _embed(tiny_gs, micro_bundle, tmp_path / "emb", shards=2)
    return tmp_path / "emb"


def _first_part(emb: Path) -> Path:
    return emb / read_manifest(emb).files[0].path


def test_a_truncated_part_is_refused_before_anything_is_written(tmp_path: Path, shards: Path) -> None:
    part = _first_part(shards)
    part.write_bytes(part.read_bytes()[:-100])
    message = _cli_error(_load_args(shards, tmp_path / "store"))
    assert f"embedding file {part.relative_to(shards)} is truncated or changed" in message
    with open_store(tmp_path / "store") as store:
        assert store.list_collections() == []


def test_a_corrupt_or_unreadable_part_is_refused(tmp_path: Path, shards: Path) -> None:
    part = _first_part(shards)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    assert "is corrupt (its sha256 differs" in _cli_error(_load_args(shards, tmp_path / "store"))
    _rewrite_manifest(shards, part)  # the manifest agrees with the damaged bytes: parquet itself refuses
    part.write_bytes(b"PAR1" + bytes(len(data) - 4))
    _rewrite_manifest(shards, part)
    assert "is not readable parquet" in _cli_error(_load_args(shards, tmp_path / "store"))
    with open_store(tmp_path / "store") as store:
        assert store.list_collections() == []


def _rewrite_manifest(emb: Path, part: Path) -> None:
    manifest = json.loads((emb / MANIFEST_FILE).read_text())
    for entry in manifest["files"]:
        if emb / entry["path"] == part:
            entry["bytes"], entry["sha256"] = part.stat().st_size, file_sha256(part)
            entry["rows"] = pq.ParquetFile(part).metadata.num_rows if part.read_bytes()[-4:] == b"PAR1" else 0
    (emb / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_part_missing_a_column_is_refused(tmp_path: Path, shards: Path) -> None:
    part = _first_part(shards)
    pq.write_table(pq.read_table(part).drop_columns(["vector_fused"]), part)
    _rewrite_manifest(shards, part)
    assert "lacks the column(s) vector_fused" in _cli_error(_load_args(shards, tmp_path / "store"))
    with open_store(tmp_path / "store") as store:
        assert store.list_collections() == []


def test_shards_of_another_model_are_refused_by_the_collection(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                                               shards: Path) -> None:
    _one_shot(tiny_gs, micro_bundle, tmp_path / "store")
    assert _load(shards, tmp_path / "store").points_present == 55  # the collection's own model: all there
    other = copy_bundle(micro_bundle, tmp_path)  # the same architecture and dim, exported from other weights
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source"]["weights_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    _embed(tiny_gs, other, tmp_path / "emb-other")
    message = _cli_error(_load_args(tmp_path / "emb-other", tmp_path / "store"))
    assert "has other weights than the model that built collection 'gs'" in message
    with open_store(tmp_path / "store") as store:
        assert store.count("gs") == 55


def test_a_load_into_a_collection_another_process_holds_is_refused_naming_it(
    tmp_path: Path, shards: Path, subprocess_env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    _load(shards, store, corpora=(1,))  # a collection with corpus 1 only: the next load would add corpus 2
    with open_store(store) as opened:
        before, record = opened.count("gs"), opened.get_record("gs")
    state = (store / "gs" / "ingest" / "state.json").read_bytes()
    script = textwrap.dedent("""
        import sys, time
        from gcl_vectordb.store import open_store
        store = open_store(sys.argv[1]); store.count("gs")  # takes the collection, as any command does
        print("holding", flush=True); time.sleep(600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script, str(store)], env=subprocess_env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        message = _cli_error(_load_args(shards, store))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert f"collection gs is in use by pid {holder.pid} (python -c" in message
    with open_store(store) as opened:  # nothing read, written or recorded meanwhile
        assert opened.count("gs") == before and opened.get_record("gs") == record
    assert (store / "gs" / "ingest" / "state.json").read_bytes() == state
    assert _load(shards, store).points_total == 55  # free again once the holder is gone


def test_an_unfinished_folder_names_the_shards_to_run(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    embed_dataset(EmbedConfig(data=tiny_gs, model_ref=str(micro_bundle), out=tmp_path / "emb",
                              partition=Partition(1, 3), workers=0))
    message = _cli_error(_load_args(tmp_path / "emb", tmp_path / "store"))
    assert "is not complete: 2 of 3 shards are not finished (0/3, 2/3)" in message
    assert "gcl-vdb embed --out" in message


def test_one_folder_holds_one_embedding_job(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    _embed(tiny_gs, micro_bundle, tmp_path / "emb", shards=2)
    with pytest.raises(DataError, match="holds embeddings of another job .*dtype float16 instead of float32"):
        embed_dataset(EmbedConfig(data=tiny_gs, model_ref=str(micro_bundle), out=tmp_path / "emb",
                                  partition=Partition(0, 2), dtype="float16", workers=0))
    with pytest.raises(DataError, match="shards 2 instead of 3|shards 3 instead of 2"):
        embed_dataset(EmbedConfig(data=tiny_gs, model_ref=str(micro_bundle), out=tmp_path / "emb",
                                  partition=Partition(0, 3), workers=0))


def test_a_shard_in_use_is_refused(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    out = tmp_path / "emb"
    with hold(out / "shard-00000-of-00001" / LOCK_FILE, "shard 0/1"):  # what a running `embed` of it holds
        message = _cli_error(["embed", "--data", str(tiny_gs), "--model", str(micro_bundle), "--out", str(out),
                              "--workers", "0"])
    assert f"shard 0/1 of {out} is in use by pid {os.getpid()} (" in message
    assert not list((out / "shard-00000-of-00001").glob("*.parquet"))


def test_usage_errors(tmp_path: Path, shards: Path) -> None:
    assert "leave --data and --model out" in _cli_error([*_load_args(shards, tmp_path), "--model", "x"], 2)
    assert "I/N" in _cli_error(["embed", "--shard", "2", "--out", str(tmp_path)], 2)
    with pytest.raises(ConfigError, match="leave --model and --data out"):
        IngestConfig(collection="gs", embeddings=shards, model_ref="x")
    with pytest.raises(ConfigError, match="the shards' fused vectors were built with field weights image=0.9"):
        _load(shards, tmp_path / "store", field_weights=FieldWeights(image=0.5, title=0.5))


# ---- the CLI, torchrun, and stops on the way


def test_embed_cli_under_torchrun_takes_rank_and_world_size(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import gcl_vectordb.ingest.embed as embed_module

    devices = []
    load = embed_module.load_encoder
    monkeypatch.setattr(embed_module, "load_encoder", lambda ref, **kw: devices.append(kw["device"]) or load(ref, **kw))
    args = ["embed", "--data", str(tiny_gs), "--model", str(micro_bundle), "--out", str(tmp_path / "emb"),
            "--workers", "0", "--json"]
    for rank in (1, 0):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["shard"] == f"{rank}/2" and report["complete"]
    assert devices == ["auto:1", "auto:0"]  # the rank's GPU where there is one; the CPU here
    assert report["manifest"] == str(tmp_path / "emb" / MANIFEST_FILE) and report["missing_shards"] == []
    args[args.index("--out") + 1] = str(tmp_path / "whole")
    result = runner.invoke(app, [*args, "--shard", "0/1"])  # --shard wins over torchrun's variables
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shard"] == "0/1"


def _embed_args(data: Path, bundle: Path, out: Path) -> list[str]:
    return ["embed", "--data", str(data), "--model", str(bundle), "--out", str(out), "--batch-size", "8",
            "--workers", "1", "--part-rows", "16", "--json"]


@pytest.mark.slow
def test_sigkill_during_embed_then_resume_gives_the_uninterrupted_shards(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    root = _damaged(tiny_gs, tmp_path)
    harness = ingest_harness(tmp_path)
    marker = f"GCL_VDB_TEST_RUN={uuid.uuid4()}"
    env = {**subprocess_env, marker.split("=")[0]: marker.split("=")[1]}
    args = _embed_args(root, micro_bundle, tmp_path / "emb")
    for threshold in (12, 30, 50):  # mid corpus 1 (parts of 16 rows), early and late in corpus 2
        killed = run_harness(harness, signal.SIGKILL, threshold, args, env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert wait_until_gone(marker) == [], "decode workers outlived their killed parent"
    finished = run_harness(harness, 0, 0, args, env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["complete"] and report["resumed_from"]["1"] > 0 and report["manifest"]
    folder = Path(report["folder"])
    assert not list(folder.glob(".*.tmp")) and len(list(folder.glob("*.parquet"))) == report["files"] > 2

    _embed(root, micro_bundle, tmp_path / "reference")
    _load(tmp_path / "emb", tmp_path / "store")
    _load(tmp_path / "reference", tmp_path / "reference-store")
    _assert_same_collection(tmp_path / "store", tmp_path / "reference-store", root)
    assert _rejects(folder / "rejects.jsonl") == _rejects(tmp_path / "reference" / folder.name / "rejects.jsonl")


def test_ctrl_c_during_embed_and_sigkill_during_the_load_both_resume(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    harness = ingest_harness(tmp_path)
    args = _embed_args(tiny_gs, micro_bundle, tmp_path / "emb")
    interrupted = run_harness(harness, signal.SIGINT, 36, args, subprocess_env)
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert "run the same command again to resume" in interrupted.stderr and "Traceback" not in interrupted.stderr
    state = json.loads((tmp_path / "emb" / "shard-00000-of-00001" / "state.json").read_text())
    assert state["cursors"]["1"]["complete"] and 0 < state["cursors"]["2"]["done"] < 28
    assert run_harness(harness, 0, 0, args, subprocess_env).returncode == 0

    load = _load_args(tmp_path / "emb", tmp_path / "store") + ["--batch-size", "4", "--json"]
    for threshold in (10, 40):
        killed = run_harness(harness, signal.SIGKILL, threshold, load, subprocess_env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with open_store(tmp_path / "store") as store:  # the killed load is a partial collection: evaluate refuses it
        partial = store.get_record("gs")
    assert partial.progress is not None and not partial.progress.complete
    with pytest.raises(PartialCollection, match="ingest incomplete"):
        require_complete(partial, allow_partial=False)
    finished = run_harness(harness, 0, 0, load, subprocess_env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with open_store(tmp_path / "store") as store:
        progress = store.get_record("gs").progress
    rows = read_manifest(tmp_path / "emb").rows
    assert progress is not None and progress.complete and progress.corpora == {c: (rows(c), rows(c)) for c in (1, 2)}
    report = json.loads(finished.stdout)
    # a load from shards checkpoints rarely (redoing it is cheap): the engine's log kept what was upserted
    # before the kills, and the re-run skips those points
    assert report["points_present"] >= 40 and report["points_written"] + report["points_present"] == 55
    _one_shot(tiny_gs, micro_bundle, tmp_path / "reference")
    _assert_same_collection(tmp_path / "store", tmp_path / "reference", tiny_gs)
    shutil.rmtree(tmp_path / "reference")
