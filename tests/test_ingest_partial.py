"""A collection whose ingest has not completed says so, and is not evaluated as if it were whole.

The ingest saves its progress in the collection's record at every checkpoint; `collections list|info` show
it, `evaluate` refuses such a collection (one line: what to do) and `--allow-partial` evaluates it with a
loud warning that the report keeps. Re-running the ingest finishes it, and the refusal goes away.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.errors import PartialCollection
from gcl_vectordb.evaluation.runner import EvalConfig, evaluate
from tests.ingest_fixtures import ingest_args, ingest_harness, run_harness

runner = CliRunner()
INCOMPLETE = r"ingest incomplete \(corpus 1: (\d+)/(\d+), corpus 2: (\d+)/(\d+)\)"


def _info(store: Path) -> dict:
    result = runner.invoke(app, ["collections", "info", "gs", "--qdrant", str(store), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_killed_ingest_is_reported_incomplete_refused_by_evaluate_and_finished_by_a_rerun(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    args = [*ingest_args(tiny_gs, micro_bundle, store, batch_size=4, workers=0), "--json"]
    harness = ingest_harness(tmp_path)
    killed = run_harness(harness, signal.SIGKILL, 40, args, subprocess_env)  # in corpus 2 (~30 per corpus)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    info = _info(store)
    found = re.fullmatch(INCOMPLETE, info["status"])
    assert found is not None, info["status"]
    done1, size1, done2, size2 = map(int, found.groups())
    assert 0 < done1 <= size1 and done2 < size2 and info["points"] < 55
    listed = runner.invoke(app, ["collections", "list", "--qdrant", str(store)])
    assert listed.exit_code == 0 and "(incomplete)" in listed.output

    refused = runner.invoke(app, ["evaluate", "--collection", "gs", "--qdrant", str(store), "--k", "12"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    (line,) = [line for line in refused.output.splitlines() if line.strip()]
    assert line.startswith(f"error: collection 'gs' is not completely ingested: {info['status']} — run the same "
                           "`gcl-vdb ingest` again")
    assert "--allow-partial" in line
    with pytest.raises(PartialCollection):
        evaluate(EvalConfig(collection="gs", store=str(store), k=12))

    report_file = tmp_path / "partial.json"
    partial = runner.invoke(app, ["evaluate", "--collection", "gs", "--qdrant", str(store), "--k", "12",
                                  "--allow-partial", "--report", str(report_file)])
    assert partial.exit_code == 0, partial.output
    assert "warning: PARTIAL COLLECTION — collection 'gs' is not completely ingested" in partial.output
    saved = json.loads(report_file.read_text())
    assert saved["settings"]["collection_status"] == info["status"] and saved["settings"]["allow_partial"]
    assert len(saved["warnings"]) == 1 and info["status"] in saved["warnings"][0]

    finished = run_harness(harness, 0, 0, args, subprocess_env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout)["points_total"] == 55
    assert _info(store)["status"] == "complete"
    whole = runner.invoke(app, ["evaluate", "--collection", "gs", "--qdrant", str(store), "--k", "12", "--json"])
    assert whole.exit_code == 0 and "PARTIAL" not in whole.output
    assert json.loads(whole.stdout)["warnings"] == []


def test_the_progress_survives_the_record_round_trip_and_counts_only_asked_corpora(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path
) -> None:
    from gcl_vectordb.ingest import IngestConfig, ingest_dataset
    from gcl_vectordb.store import open_store

    store = tmp_path / "store"
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=str(store),
                                workers=0, corpora=(1,)))
    with open_store(store) as opened:
        progress = opened.get_record("gs").progress
    assert progress is not None and progress.complete and set(progress.corpora) == {1}
    done, size = progress.corpora[1]
    assert 0 < done <= size
