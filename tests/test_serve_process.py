"""`gcl-vdb serve` as a real process (without the `train` extra): SIGTERM under load loses no accepted
response, exits 0 and leaves the store reopenable; a second server on the same collection, a missing collection and a taken port
are one-line errors (exit 1) before anything listens."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from gcl_vectordb.search import search_products
from gcl_vectordb.store import open_store
from tests.conftest import REPO_ROOT

KEY = "process-key-never-logged"
QUERIES = [f"{colour} {thing}" for colour in ("red", "blue", "green") for thing in ("dress", "bag", "boots")]


class ServerProcess:
    """`python -m gcl_vectordb serve --json …`: where it listens comes as JSON on stdout; both streams are
    collected by threads so that a full pipe never blocks the server."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "gcl_vectordb", "serve", "--json", *args], env=env,
                                        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def url(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return json.loads("".join(self.stdout))["url"]
            except json.JSONDecodeError:
                assert self.process.poll() is None, self.output
                time.sleep(0.05)
        raise AssertionError(f"the server did not start:\n{self.output}")

    def wait(self, timeout_s: float = 60) -> int:
        code = self.process.wait(timeout_s)
        for reader in self._readers:
            reader.join(10)
        return code


TRAIN_EXTRA_MODULES = ("torch", "torchvision", "open_clip", "onnx", "onnxscript", "safetensors")


def _env(subprocess_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**subprocess_env, "COLUMNS": "250", **extra}


def _without_train_extra(env: dict[str, str], folder: Path) -> dict[str, str]:
    """`env` for a process in which the `train` extra's modules are not installed: what the base install
    plus `cpu` (the Dockerfile's) serves with."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"import sys\nfor name in {TRAIN_EXTRA_MODULES!r}:\n    sys.modules[name] = None\n")
    return {**env, "PYTHONPATH": f"{folder}{os.pathsep}{env['PYTHONPATH']}"}


def _expected(store: Path) -> tuple[dict[str, list[list]], int]:
    """Each query's top 5 as the search API answers in-process, and the collection's size."""
    with open_store(store) as handle:
        hits = {q: [[h.product_id, h.score] for h in search_products(handle, "gs", q, limit=5).hits] for q in QUERIES}
        return hits, handle.count("gs")


def test_sigterm_under_load_answers_every_accepted_request_and_exits_cleanly(
        ingested: Path, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    store = Path(shutil.copytree(ingested, tmp_path / "store"))
    expected, size = _expected(store)
    env = _without_train_extra(_env(subprocess_env, GCL_VDB_API_KEY=KEY), tmp_path / "no-torch")
    server = ServerProcess(env, "--collection", "gs", "--qdrant", str(store), "--port", "0", "--max-wait-ms", "40",
                           "--max-batch", "64", "--access-log")
    url = server.url()

    busy = subprocess.run([sys.executable, "-m", "gcl_vectordb", "serve", "--collection", "gs", "--qdrant", str(store),
                           "--port", "0"], env=_env(subprocess_env), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    assert f"collection gs is in use by pid {server.process.pid} (gcl-vdb serve " in busy.stderr

    answers: list[tuple[float, str, httpx.Response]] = []
    failures: list[tuple[float, BaseException]] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=30) as http:
            i = 0
            while not stop.is_set():
                query = QUERIES[(worker + i) % len(QUERIES)]
                i += 1
                try:
                    response = http.post("/search", json={"query": query, "limit": 5})
                except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                    failures.append((time.monotonic(), exc))
                    return  # the server stopped taking connections
                answers.append((time.monotonic(), query, response))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    assert answers, server.output
    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.wait(60) == 0, server.output
    stop.set()
    for thread in threads:
        thread.join(60)

    assert len(answers) > 20
    for _, query, response in answers:  # every request that got an answer got the whole, right one
        assert response.status_code == 200, response.text
        assert response.json()["query"] == query
        assert [[h["product_id"], h["score"]] for h in response.json()["hits"]] == expected[query]
    assert any(at > stopped_at for at, _, _ in answers), "no request in flight was finished after SIGTERM"
    assert all(at >= stopped_at for at, _ in failures)  # refused only once it was stopping
    assert not any(isinstance(exc, httpx.TimeoutException) for _, exc in failures)
    assert "Traceback" not in server.output and KEY not in server.output
    assert "Waiting for application shutdown" in server.output and "stopped" in "".join(server.stderr)
    assert re.search(r"serving gs on http://127\.0\.0\.1:\d+ ", "".join(server.stderr))
    with open_store(store) as handle:  # closed cleanly: the next process opens it at once
        assert handle.count("gs") == size


def test_startup_errors_are_one_line_before_anything_listens(ingested: Path, tmp_path: Path,
                                                            subprocess_env: dict[str, str]) -> None:
    store = Path(shutil.copytree(ingested, tmp_path / "store"))

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gcl_vectordb", "serve", "--qdrant", str(store), *args],
                              env=_env(subprocess_env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    missing = serve("--collection", "nope")
    assert missing.returncode == 1 and "collection 'nope' not found" in missing.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy_port = serve("--collection", "gs", "--port", str(taken.getsockname()[1]))
    assert busy_port.returncode == 1 and "cannot listen on 127.0.0.1" in busy_port.stderr
    assert "Traceback" not in missing.stderr + busy_port.stderr
    with open_store(store) as handle:  # the failed start closed the collection again
        assert handle.count("gs") > 0
