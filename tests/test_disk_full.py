"""A full disk: one clear line instead of SIGBUS, nothing lost, and the same command completes once there is
room again.

The store lives on a small tmpfs mounted for the test (root only: skipped, with the reason, where mounting
is not permitted). tmpfs is the harsh case: it allocates a mapped page when it is first touched, so the
engine's opening of a collection needs room for all its mapped files, and an unchecked write or open on a
full tmpfs dies of SIGBUS (exit 135) before Python can say anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcl_vectordb.errors import OutOfSpace
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.store import CollectionRecord, open_store
from gcl_vectordb.store.space import HEADROOM, allocating_on_touch
from tests.ingest_fixtures import assert_same_collection, ingest_args, ingest_harness, run_harness

LEFT = 4 << 20  # bytes left free by the filler: less than any step's headroom


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _gcl_vdb(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcl_vectordb", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _one_clear_line(result: subprocess.CompletedProcess, needed_for: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])  # not 135 (SIGBUS)
    lines = [line for line in result.stderr.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: not enough free disk space to {needed_for}"), lines[0]
    assert "MiB needed, 4.0 MiB free on" in lines[0] and "run the same command again" in lines[0]
    return lines[0]


def test_a_full_disk_is_one_clear_line_and_the_rerun_completes_with_nothing_lost(
    small_disk: Path, tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    assert allocating_on_touch(small_disk) == "tmpfs"
    store, filler = small_disk / "store", small_disk / "filler"
    args = ingest_args(tiny_gs, micro_bundle, store, batch_size=4, workers=0)
    # the disk fills up after 12 points are written
    stopped = run_harness(ingest_harness(tmp_path), f"fill:{filler}:{LEFT}", 12, args, subprocess_env)
    _one_clear_line(stopped, "write 4 points into collection gs")

    on = ["--collection", "gs", "--qdrant", str(store)]
    _one_clear_line(_gcl_vdb(["query", "red dress", *on], subprocess_env), "open collection gs")
    _one_clear_line(_gcl_vdb(args, subprocess_env), "open collection gs")
    info = _gcl_vdb(["collections", "info", "gs", "--qdrant", str(store), "--json"], subprocess_env)
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["points"] is None and described["note"].startswith("not counted: not enough free disk space")
    assert described["status"].startswith("ingest incomplete (corpus 1: ")

    filler.unlink()  # room again: the same command finishes the ingest
    finished = _gcl_vdb([*args, "--json"], subprocess_env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout)
    assert report["resumed_from"]["1"] >= 12 and report["points_total"] == 55
    reference = tmp_path / "reference"
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=str(reference),
                                batch_size=4, workers=0))
    assert_same_collection(store, reference, tiny_gs, micro_bundle)


def test_creating_a_collection_on_a_full_disk_changes_nothing(small_disk: Path) -> None:
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
                           - HEADROOM // 2)
    with open_store(small_disk / "store") as store, pytest.raises(OutOfSpace, match="create collection c"):
        store.create_collection(CollectionRecord("c", model_ref="m", dim=8))
    assert not (small_disk / "store" / "c").exists()
    filler.unlink()
    with open_store(small_disk / "store") as store:
        store.create_collection(CollectionRecord("c", model_ref="m", dim=8))
        assert store.count("c") == 0
