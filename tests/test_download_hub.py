"""`gcl-vdb data download --source hf` against a loopback stand-in of the Hugging Face Hub (no internet).

The stand-in answers the calls the hub's client (`huggingface_hub.snapshot_download`) makes: the revision
(`/api/datasets/<repo>/revision/<rev>`), the file tree (`/api/datasets/<repo>/tree/<sha>`), and each file's
HEAD and GET (`/datasets/<repo>/resolve/<sha>/<path>`, Range requests honoured). It serves parquet files
the synthetic generator wrote, can cut a file's body after N bytes and then fail (an interrupted run),
and records every request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.data import open_dataset
from gcl_vectordb.data.hub import HUB_REPO, HubDownloadConfig, download_hub
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.errors import DataError, DownloadError

runner = CliRunner()
COMMIT = "c0ffee" + "0" * 34


@dataclass
class Hub:
    files: dict[str, bytes]  # repo path -> body
    repo: str = HUB_REPO
    cut: dict[str, int] = field(default_factory=dict)  # repo path -> bytes sent before the connection drops (once)
    break_after_cut: bool = False  # then every later file GET fails (the network is gone for this run)
    broken: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, repo path, Range)

    def gets(self, path: str) -> list[str | None]:
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    api = f"/api/datasets/{hub.repo}/"
    resolve = f"/datasets/{hub.repo}/resolve/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _json(self, value: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            for key, text in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, text)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(urlparse(self.path).path)
            if path.startswith(api + "revision/"):
                return self._json({"id": hub.repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in hub.files]})
            if path.startswith(api + "tree/"):
                return self._json([{"type": "file", "path": name, "size": len(body),
                                    "oid": hashlib.sha1(body).hexdigest()} for name, body in hub.files.items()])
            if path.startswith("/api/"):
                return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
            self._file(path, head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._file(unquote(urlparse(self.path).path), head=True)

        def _file(self, path: str, head: bool) -> None:
            name = path.removeprefix(resolve).partition("/")[2]
            rng = self.headers.get("Range")
            hub.requests.append(("HEAD" if head else "GET", name, rng))
            body = hub.files.get(name)
            if body is None or (hub.broken and not head):
                self.send_response(404 if body is None else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(len(body) - start))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            if head:
                return
            if name in hub.cut:  # send part of the body, then drop the connection
                self.wfile.write(body[start:hub.cut.pop(name)])
                self.wfile.flush()
                hub.broken = hub.break_after_cut
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic dataset in the HF parquet layout: what the stand-in serves (read-only)."""
    root = tmp_path_factory.mktemp("hub-source") / "gs"
    synthesize(SynthConfig(out=root, products=80, queries=12, image_size=32, seed=3, results_per_query=10,
                           format="parquet"))
    return root


@pytest.fixture
def hub(source: Path) -> Iterator[tuple[Hub, str]]:
    files = {str(p.relative_to(source)): p.read_bytes() for p in sorted((source / "data").glob("*.parquet"))}
    files["README.md"] = b"# marqo-GS-10M stand-in\n"
    state = Hub(files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _products(root: Path, corpus: int) -> list[tuple[str, str, bytes | None]]:
    return [(p.product_id, p.title, p.image_bytes) for b in open_dataset(root).iter_products(corpus) for p in b]


def test_chosen_splits_arrive_as_a_parquet_dataset(tmp_path: Path, source: Path, hub: tuple[Hub, str]) -> None:
    state, endpoint = hub
    report = download_hub(HubDownloadConfig(out=tmp_path / "gs", splits=("in_domain", "novel-query"),
                                            endpoint=endpoint))
    wanted = {"data/in_domain-00000-of-00001.parquet", "data/novel_query-00000-of-00001.parquet"}
    assert {f.path for f in report.files} == wanted and report.fetched == 2 and report.skipped == 0
    assert report.commit == COMMIT and report.splits == ("in-domain", "novel-query")
    assert {name for method, name, _ in state.requests if method == "GET"} == wanted  # nothing else fetched
    for name in wanted:
        assert (tmp_path / "gs" / name).read_bytes() == state.files[name]
    dataset = open_dataset(report.data_dir)
    assert [s.hf_name for s in dataset.splits] == ["in_domain", "novel_query"]
    assert _products(report.data_dir, 1) == _products(source, 1)

    state.requests.clear()
    again = download_hub(HubDownloadConfig(out=tmp_path / "gs", splits=("in_domain", "novel_query"),
                                           endpoint=endpoint))
    assert (again.fetched, again.skipped) == (0, 2)
    assert [r for r in state.requests if r[0] == "GET"] == []  # finished files are not fetched again


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path: Path, hub: tuple[Hub, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)  # (10 MB by default) so a cut lands mid-file
    state, endpoint = hub
    name = "data/in_domain-00000-of-00001.parquet"
    state.cut[name] = len(state.files[name]) // 2
    report = download_hub(HubDownloadConfig(out=tmp_path / "gs", splits=("in_domain",), endpoint=endpoint))
    assert report.fetched == 1 and (tmp_path / "gs" / name).read_bytes() == state.files[name]
    (first, resumed) = state.gets(name)
    assert first is None and resumed is not None and resumed.startswith("bytes=") and resumed != "bytes=0-"


def test_a_failed_run_keeps_finished_files_and_the_rerun_fetches_the_rest(tmp_path: Path,
                                                                          hub: tuple[Hub, str]) -> None:
    state, endpoint = hub
    done, cut = "data/in_domain-00000-of-00001.parquet", "data/novel_query-00000-of-00001.parquet"
    state.cut[cut], state.break_after_cut = 100, True
    config = HubDownloadConfig(out=tmp_path / "gs", splits=("in_domain", "novel_query"), endpoint=endpoint,
                               max_workers=1)
    with pytest.raises(DownloadError, match=f"downloading {HUB_REPO} from {endpoint} failed: .*run the same command "
                                            "again to resume"):
        download_hub(config)
    assert (tmp_path / "gs" / done).read_bytes() == state.files[done] and not (tmp_path / "gs" / cut).exists()
    state.broken, state.requests[:] = False, []  # the network is back
    report = download_hub(config)
    assert {(f.path, f.fetched) for f in report.files} == {(done, False), (cut, True)}
    assert state.gets(done) == [] and (tmp_path / "gs" / cut).read_bytes() == state.files[cut]


def test_hub_failures_are_one_line_errors(tmp_path: Path, hub: tuple[Hub, str]) -> None:
    state, endpoint = hub
    cases = [
        (["--splits", "zero_shot,in_domain"], "has no parquet files for split(s) zero_shot"),
        (["--splits", "in_domain", "--endpoint", "http://127.0.0.1:9"], "failed"),
    ]
    del state.files["data/zero_shot-00000-of-00001.parquet"]
    for extra, message in cases:
        result = runner.invoke(app, ["data", "download", "--source", "hf", "--out", str(tmp_path / "gs"),
                                     "--endpoint", endpoint, *extra])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.output
    with pytest.raises(DownloadError, match="dataset repository someone/else not found"):
        download_hub(HubDownloadConfig(out=tmp_path / "x", splits=("in_domain",), endpoint=endpoint,
                                       repo_id="someone/else"))
    with pytest.raises(DataError, match="unknown split 'train'"):
        HubDownloadConfig(out=tmp_path, splits=("train",))


def test_cli_hf_source_prints_the_report(tmp_path: Path, hub: tuple[Hub, str]) -> None:
    _, endpoint = hub
    result = runner.invoke(app, ["data", "download", "--source", "hf", "--splits", "novel_document",
                                 "--out", str(tmp_path / "gs"), "--json"], env={"HF_ENDPOINT": endpoint})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["splits"] == ["novel-doc"] and report["fetched"] == 1
    result = runner.invoke(app, ["data", "download", "--out", str(tmp_path / "s3")])
    assert result.exit_code == 2 and "--subset" in result.output
