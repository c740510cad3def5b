"""Crash and Ctrl-C: a real `gcl-vdb ingest` process is stopped mid-run, and the same command resumes.

The harness (`tests.ingest_fixtures.INGEST_HARNESS`) runs the CLI with a progress display that signals its
own process once the bar shows k points (right after a batch is written, usually before its cursor is
saved), so each stop lands at a known place while the decode workers, the encoder and the reader are
mid-work.
"""

from __future__ import annotations

import json
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from gcl_vectordb.data import open_dataset
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from tests.ingest_fixtures import (
    assert_same_collection,
    copy_dataset,
    edit_corpus,
    ingest_harness,
    run_harness,
    wait_until_gone,
)


@dataclass(frozen=True)
class Setup:
    root: Path  # the dataset copy, with rejects in both corpora
    harness: Path
    store: Path
    n1: int  # products of corpus 1 and 2 as stored (before rejects)
    n2: int
    args: list[str]  # the ingest command's options


def _setup(tmp_path: Path, source: Path, bundle: Path, batch_size: int, workers: int) -> Setup:
    root = copy_dataset(source, tmp_path)
    dataset = open_dataset(root)
    first = next(iter(dataset.iter_products(1, batch_size=4)))
    first[1].image_path.write_bytes(b"corrupt")

    def empty_title(entries):  # neither title nor image: rejected
        entries[2][1]["title"] = ""
        del entries[2][1]["image_local"]
        return entries

    edit_corpus(root, 2, empty_title)
    harness = ingest_harness(tmp_path)
    store = tmp_path / "store"
    args = ["ingest", "--collection", "gs", "--data", str(root), "--model", str(bundle), "--qdrant", str(store),
            "--batch-size", str(batch_size), "--workers", str(workers), "--json"]
    return Setup(root, harness, store, dataset.count_products(1), dataset.count_products(2), args)


def _assert_like_an_uninterrupted_run(setup: Setup, report: dict, bundle: Path, batch_size: int) -> None:
    """Same ids, payloads and vectors, same top-10s, same rejects file as one run without a stop."""
    reference = ingest_dataset(IngestConfig(collection="gs", data=setup.root, model_ref=str(bundle),
                                    store=str(setup.root.parent / "reference"), batch_size=batch_size, workers=0))
    assert report["points_total"] == reference.points_total == setup.n1 + setup.n2 - 2
    assert_same_collection(setup.store, setup.root.parent / "reference", setup.root, bundle)
    assert _rejects(Path(report["rejects_file"])) == _rejects(reference.rejects_file)
    assert report["rejects"] == {"corrupt-image": 1, "empty-title": 1}




def _rejects(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda e: json.dumps(e))


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_collection(
    tmp_path: Path, ingest_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    setup = _setup(tmp_path, ingest_gs, micro_bundle, batch_size=8, workers=2)
    n1, n2 = setup.n1, setup.n2
    marker = f"GCL_VDB_TEST_RUN={uuid.uuid4()}"
    env = {**subprocess_env, marker.split("=")[0]: marker.split("=")[1]}
    # early in corpus 1 (no checkpoint yet), early in corpus 2, near the end
    for threshold in (24, n1 + 16, n1 + n2 - 12):
        killed = run_harness(setup.harness, signal.SIGKILL, threshold, setup.args, env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert wait_until_gone(marker) == [], "decode workers outlived their killed parent"
    state = json.loads((setup.store / "gs" / "ingest" / "state.json").read_text())
    assert state["cursors"]["1"]["complete"] and not state["cursors"]["2"]["complete"]

    finished = run_harness(setup.harness, 0, 0, setup.args, env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["resumed_from"]["1"] == n1
    _assert_like_an_uninterrupted_run(setup, report, micro_bundle, batch_size=8)


def test_ctrl_c_saves_the_state_and_the_same_command_resumes(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    setup = _setup(tmp_path, tiny_gs, micro_bundle, batch_size=4, workers=1)
    n1, n2 = setup.n1, setup.n2
    interrupted = run_harness(setup.harness, signal.SIGINT, n1 + 8, setup.args, subprocess_env)
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert "interrupted — run the same command again to resume where it stopped" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr and interrupted.stdout == ""
    state = json.loads((setup.store / "gs" / "ingest" / "state.json").read_text())
    # saved on the way out: past the checkpoint at the end of corpus 1
    assert state["cursors"]["1"] == {"done": n1, "complete": True}
    assert 8 <= state["cursors"]["2"]["done"] < n2 and not state["cursors"]["2"]["complete"]

    resumed = run_harness(setup.harness, 0, 0, setup.args, subprocess_env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout)
    done2 = state["cursors"]["2"]["done"]
    assert report["resumed_from"] == {"1": n1, "2": done2}
    # the cursor counts entries, the rejected one (third) included
    assert report["points_written"] == n2 - done2
    _assert_like_an_uninterrupted_run(setup, report, micro_bundle, batch_size=4)
