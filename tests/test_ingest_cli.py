"""`gcl-vdb ingest` and `gcl-vdb query` through typer's CliRunner: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.encoders import load_encoder
from tests.ingest_fixtures import all_product_ids, stored_points

runner = CliRunner()


def _one_line_error(result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_ingest_then_query_through_the_cli(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    store = str(tmp_path / "store")
    result = runner.invoke(app, ["ingest", "--collection", "shop", "--data", str(tiny_gs), "--model",
                                 str(micro_bundle), "--qdrant", store, "--batch-size", "16", "--workers", "1",
                                 "--fields", "image=0.7,title=0.3"])
    assert result.exit_code == 0, result.output
    for text in ("ingest into shop", "points in collection", "points/s", "rejects.jsonl", "built in"):
        assert text in result.output
    assert "55" in result.output

    result = runner.invoke(app, ["query", "red summer dress", "--collection", "shop", "--qdrant", store])
    assert result.exit_code == 0, result.output
    assert '"red summer dress" in shop (mode fused' in result.output
    assert all(f"│ {rank:>4} │" in result.output for rank in range(1, 11))

    result = runner.invoke(app, ["query", "red summer dress", "--collection", "shop", "--qdrant", store,
                                 "--json", "--limit", "5", "--mode", "weighted"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [hit["rank"] for hit in answer["hits"]] == [1, 2, 3, 4, 5]
    assert answer["weights"] == {"image": 0.7, "title": 0.3}  # the collection's field weights by default
    assert answer["model_ref"] == str(micro_bundle) and answer["collection"] == "shop"

    # without --fields, a run into an existing collection takes the collection's field weights
    again = runner.invoke(app, ["ingest", "--collection", "shop", "--data", str(tiny_gs), "--model",
                                str(micro_bundle), "--qdrant", store, "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["points_written"], report["points_present"], report["points_total"]) == (0, 55, 55)


def test_server_backend_through_the_cli(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    location = f"local:{tmp_path / 'qdrant'}"
    result = runner.invoke(app, ["ingest", "--collection", "gs", "--data", str(tiny_gs), "--model", str(micro_bundle),
                                 "--qdrant", location, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["points_total"] == 55
    result = runner.invoke(app, ["query", "red dress", "--collection", "gs", "--qdrant", location, "--json",
                                 "--mode", "rrf"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["hits"]) == 10


def _brute_force(ingested: Path, query: np.ndarray, vector: str, corpus: int | None = None) -> list[str]:
    points = stored_points(str(ingested), "gs", all_product_ids(Path(_dataset_root(ingested))))
    scored = [(float(p.vectors[vector] @ query), pid) for pid, p in points.items()
              if vector in p.vectors and (corpus is None or p.payload["corpus"] == corpus)]
    return [pid for _, pid in sorted(scored, reverse=True)[:10]]


def _dataset_root(ingested: Path) -> str:
    return json.loads((ingested / "gs" / "collection.json").read_text())["dataset_root"]


@pytest.mark.parametrize(("mode", "extra", "vector", "corpus"), [
    ("fused", [], "fused", None),
    ("image", [], "image", None),
    ("title", ["--filter", "corpus=2"], "title", 2),
    ("weighted", ["--weights", "image=1,title=0"], "image", None),  # weight 0 on title: the image ranking
])
def test_query_modes_match_a_brute_force_ranking(ingested: Path, micro_bundle: Path, mode: str, extra: list[str],
                                                 vector: str, corpus: int | None) -> None:
    text = "blue denim jacket"
    result = runner.invoke(app, ["query", text, "--collection", "gs", "--qdrant", str(ingested), "--mode", mode,
                                 "--exact", "--json", *extra])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    query = load_encoder(str(micro_bundle)).encode_texts([text])[0]
    assert [hit["product_id"] for hit in hits] == _brute_force(ingested, query, vector, corpus)
    assert all(hit["corpus"] == corpus for hit in hits) or corpus is None


def test_rrf_mode_and_filters_through_the_cli(ingested: Path) -> None:
    result = runner.invoke(app, ["query", "red dress", "--collection", "gs", "--qdrant", str(ingested),
                                 "--mode", "rrf", "--filter", "corpus=1", "--limit", "7", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 7 and {hit["corpus"] for hit in hits} == {1}
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)


def test_a_filter_on_a_payload_key_no_product_has_is_an_error(ingested: Path) -> None:
    args = ["query", "red dress", "--collection", "gs", "--qdrant", str(ingested), "--limit", "3", "--json"]
    line = _one_line_error(runner.invoke(app, [*args, "--filter", "nokey=1"]))
    assert "collection 'gs' has no payload key 'nokey'" in line
    assert "filter on one of: product_id, title, image, image_cell, corpus, brand, category" in line
    brand = runner.invoke(app, [*args, "--filter", "brand=Vela"])  # an extra column of the corpus
    assert brand.exit_code == 0, brand.output
    assert {hit["payload"]["brand"] for hit in json.loads(brand.stdout)["hits"]} == {"Vela"}


def test_a_store_location_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a folder")
    line = _one_line_error(runner.invoke(app, ["query", "red", "--collection", "gs", "--qdrant",
                                               str(tmp_path / "store")]))
    assert f"the store location {tmp_path / 'store'} is not a directory" in line and "not found" not in line


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "--fields", "image0.9"], "expected key=value pairs"),
    (["ingest", "--fields", "image=x"], "image=x is not a number"),
    (["ingest", "--fields", "text=1"], "unknown field(s) text"),
    (["query", "q", "--weights", "image=1"], "weights apply to --mode weighted, not fused"),
    (["query", "q", "--mode", "weighted", "--weights", "image=0,title=0"], "at least one field weight must be positive"),
    (["query", "q", "--filter", "corpus"], "expected key=value pairs"),
    (["query", "q", "--filter", "corpus=3"], "the corpus is 1 or 2"),
    (["query", "q", "--filter", "brand=a,brand=b"], "brand is given twice"),
    (["query", "q", "--mode", "cosine"], "'cosine' is not one of"),
    (["evaluate", "--seed", "-1"], "should be greater than or equal to 0"),
])
def test_malformed_options_are_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split())


def test_unknown_collection(ingested: Path) -> None:
    line = _one_line_error(runner.invoke(app, ["query", "red", "--collection", "nope", "--qdrant", str(ingested)]))
    assert "collection 'nope' not found in" in line and "existing collections: gs" in line


def test_data_folder_without_the_expected_files(tmp_path: Path, micro_bundle: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = _one_line_error(runner.invoke(app, ["ingest", "--data", str(tmp_path / "empty"), "--model",
                                               str(micro_bundle), "--qdrant", str(tmp_path / "store")]))
    assert "holds no Marqo-GS dataset: expected corpus_1.json" in line and "gcl-vdb data synth" in line


def test_a_model_of_another_dim_is_refused(tmp_path: Path, ingested: Path, tiny_gs: Path, tiny_bundle: Path) -> None:
    store = shutil.copytree(ingested, tmp_path / "store")
    line = _one_line_error(runner.invoke(app, ["ingest", "--collection", "gs", "--data", str(tiny_gs), "--model",
                                               str(tiny_bundle), "--qdrant", str(store)]))
    assert "embeds in 128 dimensions but collection 'gs' holds 32-dim vectors" in line


def test_shards_need_a_server(tmp_path: Path, tiny_gs: Path, micro_bundle: Path) -> None:
    line = _one_line_error(runner.invoke(app, ["ingest", "--data", str(tiny_gs), "--model", str(micro_bundle),
                                               "--qdrant", str(tmp_path), "--shards", "2"]))
    assert "shards and replicas need a Qdrant server" in line


def test_storage_is_chosen_at_creation_validated_first_and_then_fixed(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path
) -> None:
    store = tmp_path / "store"
    ingest = ["ingest", "--collection", "shop", "--data", str(tiny_gs), "--model", str(micro_bundle),
              "--qdrant", str(store), "--workers", "0"]
    line = _one_line_error(runner.invoke(app, [*ingest, "--storage", "int9-disk"]))
    assert "unknown storage preset 'int9-disk' — use one of: ram, float16, int8-disk, binary-disk" in line
    line = _one_line_error(runner.invoke(app, [*ingest, "--storage", "int8-disk", "--storage-set", "fused.colour=red"]))
    assert "unknown storage option 'fused.colour'" in line
    line = _one_line_error(runner.invoke(app, [*ingest, "--storage-set", "quantization=int4"]))
    assert "unknown storage quantization 'int4'" in line
    assert not store.exists()  # refused before anything was created

    created = runner.invoke(app, [*ingest, "--storage", "int8-disk", "--storage-set", "image.hnsw=off", "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(runner.invoke(app, ["collections", "info", "shop", "--qdrant", str(store), "--json"]).stdout)
    assert info["points"] == 55 and info["record"]["storage"]["name"] == "int8-disk+"
    assert info["record"]["storage"]["vectors"]["image"]["hnsw_m"] == 0
    line = _one_line_error(runner.invoke(app, [*ingest, "--storage", "float16"]))
    assert "collection 'shop' is stored as int8-disk+, not float16" in line and "leave --storage out" in line
    again = runner.invoke(app, [*ingest, "--json"])  # no --storage: the collection keeps its own
    assert again.exit_code == 0 and json.loads(again.stdout)["points_written"] == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", ["ingest", "query"])
def test_an_unreachable_server(tiny_gs: Path, micro_bundle: Path, command: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    args = (["ingest", "--data", str(tiny_gs), "--model", str(micro_bundle)] if command == "ingest"
            else ["query", "red dress"])
    line = _one_line_error(runner.invoke(app, [*args, "--qdrant", url]))
    assert f"cannot reach the Qdrant server at {url}" in line


HOLDER = textwrap.dedent("""
    import sys
    from gcl_vectordb.store import open_store
    store = open_store(sys.argv[1])
    print("holding", store.count("gs"), flush=True)
    sys.stdin.read()
    store.close()
""")


@pytest.fixture
def held(tmp_path: Path, ingested: Path, subprocess_env: dict[str, str]) -> Iterator[tuple[Path, int]]:
    """A copy of the ingested store whose collection another process holds open, and that process's pid."""
    store = shutil.copytree(ingested, tmp_path / "store")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], env=subprocess_env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("holding 55")
        yield store, holder.pid
    finally:
        holder.communicate("", timeout=60)


def test_a_store_held_by_another_process(held: tuple[Path, int], tiny_gs: Path, micro_bundle: Path) -> None:
    store, pid = held
    for args in (["query", "red dress", "--collection", "gs"],
                 ["ingest", "--collection", "gs", "--data", str(tiny_gs), "--model", str(micro_bundle)]):
        line = _one_line_error(runner.invoke(app, [*args, "--qdrant", str(store)]))
        assert f"collection gs is in use by pid {pid} (python -c {store}, since " in line
        assert line.endswith("— wait for it to finish or stop it, then run the command again")
