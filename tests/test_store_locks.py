"""One process at a time per collection: the lock is taken before anything touches the collection, named in
one line to whoever is refused, and gone with its holder (even after kill -9).

Hostile use through real processes: while an ingest is paused half-way (the harness of
`tests.ingest_fixtures`), queries, `collections list|info|drop`, `evaluate` and a second ingest are
refused or answered without touching the shard; the ingest then finishes with exactly the collection of
an undisturbed run. Two ingests started together: one runs, the other is refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gcl_vectordb.errors import CollectionInUse, StoreError
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.store import CollectionRecord, open_store
from gcl_vectordb.store.lock import Lock, hold, lock_path
from tests.ingest_fixtures import assert_same_collection, ingest_args, ingest_harness, run_harness

HOLDER_LINE = r"in use by pid (\d+) \((.*), since \d\d:\d\d:\d\d\)"


def _gcl_vdb(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcl_vectordb", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _refused_by(result: subprocess.CompletedProcess, pid: int, command: str) -> str:
    """The one-line refusal of a held collection, naming the holder's pid and command; returns the line."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    found = re.search(HOLDER_LINE, lines[0])
    assert found is not None and int(found.group(1)) == pid and found.group(2).startswith(command), lines[0]
    return lines[0]


def _wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


# ---------------------------------------------------------------- the lock itself


def test_a_second_holder_is_refused_with_the_first_ones_pid_command_and_start(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with hold(path, "collection x"):
        with pytest.raises(CollectionInUse) as raised:  # another open file: refused in this process too
            Lock(path, "collection x").acquire()
        assert raised.value.holder.startswith(f"pid {os.getpid()} (")
        assert str(raised.value).startswith(f"collection x is in use by pid {os.getpid()} (")
    with hold(path, "collection x") as again:  # released on exit: free again
        assert again.held
    assert path.is_file()  # never deleted: a dropped and re-created collection keeps one lock file


def test_the_command_line_in_the_lock_file_carries_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/bin/gcl-vdb", "serve", "--qdrant", "https://me:s3cret@q.example:6333",
                                      "--api-key", "s3cret", "--token=s3cret", "--port", "80"])
    with hold(tmp_path / "x.lock", "collection x"):
        assert "s3cret" not in (tmp_path / "x.lock").read_text()
        with pytest.raises(CollectionInUse) as raised:
            hold(tmp_path / "x.lock", "collection x")
    assert ("gcl-vdb serve --qdrant https://q.example:6333 --api-key *** --token=*** --port 80"
            in str(raised.value))


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    root = tmp_path / "store"
    with open_store(root) as store:
        store.create_collection(CollectionRecord("c", model_ref="m", dim=4))
    script = textwrap.dedent("""
        import sys, time
        from gcl_vectordb.store import open_store
        store = open_store(sys.argv[1]); store.count("c")
        print("holding", flush=True); time.sleep(600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script, str(root)], env=subprocess_env, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    with open_store(root) as store, pytest.raises(CollectionInUse, match=f"pid {holder.pid}"):
        store.count("c")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with open_store(root) as store:  # the kernel released the flock with the process
        assert store.count("c") == 0


def test_two_stores_in_one_process_conflict_like_two_processes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with open_store(root) as first:
        first.create_collection(CollectionRecord("c", model_ref="m", dim=4))
        with open_store(root) as second:
            with pytest.raises(CollectionInUse, match=f"in use by pid {os.getpid()}"):
                second.count("c")
            with pytest.raises(CollectionInUse):
                second.create_collection(CollectionRecord("c", model_ref="m", dim=4), exist_ok=True)
            assert [r.name for r in second.list_collections()] == ["c"]  # records are read without a lock
    with open_store(root) as store:
        store.drop("c")
        assert lock_path(root, "c").is_file() and not (root / "c").exists()
        store.create_collection(CollectionRecord("c", model_ref="m", dim=8))  # under the same lock
    with open_store(root) as store:
        assert store.get_record("c").dim == 8


def test_an_unknown_collection_is_not_found_and_leaves_no_lock_file(tmp_path: Path) -> None:
    with open_store(tmp_path / "store") as store, pytest.raises(StoreError, match="not found"):
        store.hold("nope")
    assert not (tmp_path / "store").exists()


# ---------------------------------------------------------------- hostile use during an ingest


def test_every_command_is_refused_cleanly_while_an_ingest_runs_and_the_ingest_completes(
    tmp_path: Path, ingest_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    args = [*ingest_args(ingest_gs, micro_bundle, store, batch_size=8, workers=1), "--json"]
    marker = tmp_path / "go-on"
    ingest = run_harness(ingest_harness(tmp_path), f"pause:{marker}", 40, args, subprocess_env, wait=False)
    try:
        _wait_for(marker.with_name("go-on.paused"), ingest)
        on = ["--collection", "gs", "--qdrant", str(store)]
        for command in (["query", "red dress", *on], ["query", "blue shoes", "--mode", "rrf", *on],
                        ["evaluate", "--split", "in-domain", *on], ["collections", "drop", "gs", "--yes", *on[2:]],
                        args[:-1]):
            _refused_by(_gcl_vdb(command, subprocess_env), ingest.pid, "gcl-vdb ingest")
        listed = _gcl_vdb(["collections", "list", "--qdrant", str(store), "--json"], subprocess_env)
        assert listed.returncode == 0, listed.stderr
        (entry,) = json.loads(listed.stdout)
        assert entry["points"] is None and re.fullmatch(HOLDER_LINE, entry["note"]).group(1) == str(ingest.pid)
        assert entry["status"].startswith("ingest incomplete (corpus 1: ")
        info = _gcl_vdb(["collections", "info", "gs", "--qdrant", str(store)], subprocess_env)
        assert info.returncode == 0 and "ingest incomplete" in info.stdout and f"pid {ingest.pid}" in info.stdout
    finally:
        marker.write_text("")
        out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err[-3000:]
    report = json.loads(out)
    ingest_dataset(IngestConfig(collection="gs", data=ingest_gs, model_ref=str(micro_bundle),
                                store=str(tmp_path / "reference"), batch_size=8, workers=0))
    assert report["points_total"] == report["points_written"] > 0
    assert_same_collection(store, tmp_path / "reference", ingest_gs, micro_bundle)
    info = _gcl_vdb(["collections", "info", "gs", "--qdrant", str(store), "--json"], subprocess_env)
    assert json.loads(info.stdout)["status"] == "complete"


def test_two_ingests_started_together_one_runs_the_other_is_refused(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    args = [*ingest_args(tiny_gs, micro_bundle, store, batch_size=4, workers=0), "--json"]
    harness = ingest_harness(tmp_path)
    # each pauses after its first batch, if it gets that far: the one that does holds the collection until
    # the other has given up, so the two certainly overlap
    markers = [tmp_path / "a", tmp_path / "b"]
    runs = [run_harness(harness, f"pause:{m}", 4, args, subprocess_env, wait=False) for m in markers]
    deadline = time.monotonic() + 180
    while not (any(r.poll() is not None for r in runs)
               and any(m.with_name(m.name + ".paused").exists() for m in markers)):
        assert time.monotonic() < deadline and any(r.poll() is None for r in runs)
        time.sleep(0.05)
    for m in markers:
        m.write_text("")
    results = [(run, *run.communicate(timeout=300)) for run in runs]
    finished = [r for r in results if r[0].returncode == 0]
    refused = [r for r in results if r[0].returncode != 0]
    assert len(finished) == 1 and len(refused) == 1, [r[2][-2000:] for r in results]
    run, _, err = refused[0]
    line = _refused_by(subprocess.CompletedProcess(run.args, 1, "", err), finished[0][0].pid, "gcl-vdb ingest")
    assert "collection gs is in use" in line
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle),
                                store=str(tmp_path / "reference"), batch_size=4, workers=0))
    assert_same_collection(store, tmp_path / "reference", tiny_gs, micro_bundle)


def test_two_ingests_into_one_server_collection_cannot_share_the_local_state(
    tmp_path: Path, tiny_gs: Path, micro_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=":memory:", workers=0)
    with hold(config.resolved_state_dir() / "ingest.lock", "another ingest"), \
            pytest.raises(CollectionInUse, match=r"the ingest state of collection gs .* is in use by pid"):
        ingest_dataset(config)
    assert ingest_dataset(config).points_total == 55  # free again
