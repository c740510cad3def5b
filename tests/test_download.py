"""`gcl-vdb data download` end to end against a loopback HTTP server the tests start (no internet).

The server supports Range requests, can cut the connection after N bytes of the first response for a
path (an interrupted download), can ignore Range (answer 200), can announce more bytes than it has (a
size mismatch), and records the Range header of every request.
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.data import RejectLog, open_dataset
from gcl_vectordb.data.download import (
    DownloadConfig,
    download_file,
    download_subset,
    extract_archive,
)
from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.errors import ConfigError, DownloadError

CHUNK = 1024  # small enough that a cut after a few KiB lands mid-file


# --------------------------------------------------------------------------- loopback server


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    cut_first: dict[str, int] = field(default_factory=dict)  # URL path -> body bytes sent on the 1st GET
    ignore_range: bool = False
    extra_length: int = 0  # announce this many bytes more than the body has
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ranges(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        header = self.headers.get("Range")
        with state.lock:
            first = all(p != self.path for p, _ in state.requests)
            state.requests.append((self.path, header))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if header and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload) + state.extra_length))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = state.cut_first.get(self.path) if first else None
        self.wfile.write(payload if cut is None else payload[:cut])
        self.wfile.flush()
        if cut is not None or state.extra_length:
            self.close_connection = True  # the client sees the body end early


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ServerState]]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- official layout fixture

def write_official_layout(root: Path, folder: str = "marqo_gs_wfash_1m") -> Path:
    """A small Marqo-GS release made by the synthetic generator, laid out like the public archives:
    root/marqo-gs-dataset/<folder>/ (corpus, split CSVs, gt and queries JSON) and root/images_wfash/.
    Returns the generated folder (the reference copy)."""
    generated = root / "generated"
    synthesize(SynthConfig(out=generated, products=40, queries=8, image_size=16, seed=3))
    data = root / "marqo-gs-dataset" / folder
    data.mkdir(parents=True)
    for path in generated.iterdir():
        if path.is_file():
            shutil.copy2(path, data / path.name)
    shutil.copytree(generated / "images", root / "images_wfash")
    # Another sub-dataset in the same tar, which a wfash-1m download must not extract.
    other = root / "marqo-gs-dataset" / "marqo_gs_fashion_5m"
    other.mkdir()
    (other / "corpus_1.json").write_text("{}")
    return generated


def _tar_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


@pytest.fixture
def official_archives(tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    write_official_layout(src)
    return {
        "/v1/marqo-gs-dataset.tar": _tar_of(src / "marqo-gs-dataset"),
        "/v1/images_wfash.tar": _tar_of(src / "images_wfash"),
    }


class RecordingProgress:
    def __init__(self) -> None:
        self.tasks: list[_RecordedTask] = []

    def task(self, description: str, total: float | None = None, unit: str = "it") -> _RecordedTask:
        self.tasks.append(_RecordedTask(description, total, unit))
        return self.tasks[-1]


@dataclass
class _RecordedTask:
    description: str
    total: float | None
    unit: str
    advanced: float = 0
    closed: bool = False

    def advance(self, amount: float = 1) -> None:
        self.advanced += amount

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        if total is not None:
            self.total = total

    def close(self) -> None:
        self.closed = True


def _config(base: str, out: Path, **kw: object) -> DownloadConfig:
    return DownloadConfig(subset="wfash-1m", out=out, base_url=f"{base}/v1", chunk_size=CHUNK, backoff=0,
                          timeout=10, **kw)


# --------------------------------------------------------------------------- end to end


def test_download_subset_end_to_end(server, official_archives, tmp_path: Path) -> None:
    base, state = server
    state.files.update(official_archives)
    progress = RecordingProgress()
    report = download_subset(_config(base, tmp_path / "out"), progress)

    root = tmp_path / "out" / "marqo-gs-dataset"
    generated = tmp_path / "src" / "generated"
    assert report.data_dir == root / "marqo_gs_wfash_1m"
    assert report.images_dir == root / "images_wfash"
    assert {p.name for p in report.data_dir.iterdir()} == {p.name for p in generated.iterdir() if p.is_file()}
    assert not (root / "marqo_gs_fashion_5m").exists()  # only the chosen subset is extracted
    # The downloaded release reads back like the generated one: every product with its image, no rejects.
    dataset = open_dataset(report.data_dir)
    reference = open_dataset(generated)
    for corpus in (1, 2):
        rejects = RejectLog()
        got = [p for batch in dataset.iter_products(corpus, rejects=rejects) for p in batch]
        want = [p for batch in reference.iter_products(corpus) for p in batch]
        assert len(rejects) == 0
        assert [(p.product_id, p.title, p.read_image_bytes()) for p in got] == [
            (p.product_id, p.title, p.read_image_bytes()) for p in want
        ]
    assert (report.fetched, report.skipped) == (2, 0)
    assert report.bytes_received == sum(len(body) for body in official_archives.values())
    assert not (tmp_path / "out" / "archives" / "marqo-gs-dataset.tar").exists()  # deleted by default
    download = next(t for t in progress.tasks if t.description == "download marqo-gs-dataset.tar")
    assert (download.unit, download.total, download.advanced, download.closed) == (
        "B", len(official_archives["/v1/marqo-gs-dataset.tar"]),
        len(official_archives["/v1/marqo-gs-dataset.tar"]), True,
    )


def test_rerun_after_success_makes_no_request(server, official_archives, tmp_path: Path) -> None:
    base, state = server
    state.files.update(official_archives)
    first = download_subset(_config(base, tmp_path / "out", keep_archives=True))
    seen = len(state.requests)
    again = download_subset(_config(base, tmp_path / "out", keep_archives=True))
    assert len(state.requests) == seen == 2
    assert [a.status for a in again.archives] == ["skipped", "skipped"]
    assert (again.data_dir, again.images_dir, again.bytes_received) == (first.data_dir, first.images_dir, 0)
    # The file-level marker alone also skips: no request for a finished archive.
    download_file(f"{base}/v1/images_wfash.tar", tmp_path / "out" / "archives" / "images_wfash.tar")
    assert len(state.requests) == seen


def test_no_images_fetches_only_the_dataset_tar(server, official_archives, tmp_path: Path) -> None:
    base, state = server
    state.files.update(official_archives)
    report = download_subset(_config(base, tmp_path / "out", images=False))
    assert [path for path, _ in state.requests] == ["/v1/marqo-gs-dataset.tar"]
    assert report.images_dir is None and (report.data_dir / "corpus_1.json").is_file()


# --------------------------------------------------------------------------- resume, retry, size check

PAYLOAD = random.Random(7).randbytes(20_000)


def test_interrupted_download_resumes_on_the_next_call(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD
    state.cut_first["/blob.bin"] = 5_000
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="5,000 of 20,000 bytes"):
        download_file(f"{base}/blob.bin", dest, retries=0, chunk_size=CHUNK)
    part = tmp_path / "blob.bin.part"
    assert part.read_bytes() == PAYLOAD[:5_000] and not dest.exists()

    download_file(f"{base}/blob.bin", dest, retries=0, chunk_size=CHUNK)
    assert state.ranges("/blob.bin") == [None, "bytes=5000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_retry_loop_resumes_within_one_call(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD
    state.cut_first["/blob.bin"] = 7_000
    dest = download_file(f"{base}/blob.bin", tmp_path / "blob.bin", retries=2, backoff=0, chunk_size=CHUNK)
    assert state.ranges("/blob.bin") == [None, "bytes=7000-"]
    assert dest.read_bytes() == PAYLOAD


def test_partial_file_of_an_older_remote_version_is_not_resumed(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD
    state.cut_first["/blob.bin"] = 5_000
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError):
        download_file(f"{base}/blob.bin", dest, retries=0, chunk_size=CHUNK)
    newer = random.Random(8).randbytes(25_000)  # the mirror now serves another file under the same name
    state.files["/blob.bin"] = newer
    download_file(f"{base}/blob.bin", dest, retries=1, backoff=0, chunk_size=CHUNK)
    assert state.ranges("/blob.bin") == [None, "bytes=5000-", None]
    assert dest.read_bytes() == newer


def test_server_ignoring_range_restarts_cleanly(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD
    state.ignore_range = True
    (tmp_path / "blob.bin.part").write_bytes(b"\xff" * 3_000)  # must not survive at the start of the file
    dest = download_file(f"{base}/blob.bin", tmp_path / "blob.bin", retries=0, chunk_size=CHUNK)
    assert state.ranges("/blob.bin") == ["bytes=3000-"]
    assert dest.read_bytes() == PAYLOAD


def test_part_already_complete_is_finished_on_416(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    dest = download_file(f"{base}/blob.bin", tmp_path / "blob.bin", retries=0)
    assert state.ranges("/blob.bin") == ["bytes=20000-"]
    assert dest.read_bytes() == PAYLOAD


def test_size_mismatch_is_a_clear_error(server, tmp_path: Path) -> None:
    base, state = server
    state.files["/blob.bin"] = PAYLOAD[:4_000]
    state.extra_length = 1_000  # announces 5,000 bytes, has 4,000
    with pytest.raises(DownloadError) as caught:
        download_file(f"{base}/blob.bin", tmp_path / "blob.bin", retries=2, backoff=0, chunk_size=CHUNK)
    message = str(caught.value)
    assert "failed after 3 attempt(s): size mismatch: 4,000 of 5,000 bytes arrived" in message
    assert "run the same command again to resume" in message
    assert not (tmp_path / "blob.bin").exists()


def test_http_404_fails_at_once(server, tmp_path: Path) -> None:
    base, state = server
    with pytest.raises(DownloadError, match=r"HTTP 404 .*check --base-url"):
        download_file(f"{base}/missing.tar", tmp_path / "missing.tar", retries=3, backoff=0)
    assert len(state.requests) == 1


def test_unreachable_host_fails_at_once_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1:\d+ .*offline.*--base-url"):
        download_file(f"{_closed_port_url()}/x.tar", tmp_path / "x.tar", retries=5, backoff=10)


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown subset"):
        DownloadConfig(subset="wfash", out=tmp_path)
    with pytest.raises(ConfigError, match="http"):
        DownloadConfig(subset="wfash-1m", out=tmp_path, base_url="file:///etc")
    with pytest.raises(DownloadError, match="only http"):
        download_file("file:///etc/hostname", tmp_path / "h")


# --------------------------------------------------------------------------- safe extraction


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"x") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else b"")


def _write_tar(path: Path, members: list[tuple]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


HOSTILE = {
    "dotdot": ([_member("ok.txt"), _member("../evil")], "../evil", "escapes the target folder"),
    "absolute": ([_member("/abs/evil")], "/abs/evil", "absolute path"),
    "symlink-to-etc": (
        [_member("etc_link", tarfile.SYMTYPE, "/etc"), _member("etc_link/evil")], "etc_link", "absolute path",
    ),
    "relative-symlink-out": (
        [_member("up", tarfile.SYMTYPE, "../.."), _member("up/evil")], "up", "pointing outside",
    ),
    "through-inner-symlink": (  # sub/up -> .. is inside; sub/up/../evil is not (lexically it is sub/evil)
        [_member("sub/up", tarfile.SYMTYPE, ".."), _member("sub/up/../evil")], "sub/up/../evil", "escapes",
    ),
    "hardlink-outside": ([_member("hard", tarfile.LNKTYPE, "../outside.txt")], "hard", "hard link"),
    "hardlink-absolute": ([_member("hard", tarfile.LNKTYPE, "/etc/passwd")], "hard", "absolute path"),
    "device": ([_member("dev/null", tarfile.CHRTYPE)], "dev/null", "device file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_is_rejected_and_writes_nothing(case: str, tmp_path: Path) -> None:
    members, offender, reason = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    tar_path = _write_tar(work / "evil.tar", members)
    out = work / "out"
    with pytest.raises(DownloadError) as caught:
        extract_archive(tar_path, out)
    message = str(caught.value)
    assert f"member {offender!r}" in message and reason in message
    assert sorted(p.name for p in work.iterdir()) == ["evil.tar"]  # not even out/ was created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert not Path("/abs/evil").exists()


def test_data_filter_catches_a_symlink_already_on_disk(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "planted").symlink_to(outside)  # not in the archive, so only the data filter can see it
    tar_path = _write_tar(tmp_path / "a.tar", [_member("planted/evil")])
    with pytest.raises(DownloadError, match="refusing to extract 'planted/evil'"):
        extract_archive(tar_path, out)
    assert list(outside.iterdir()) == []


def test_links_inside_the_archive_are_extracted(tmp_path: Path) -> None:
    tar_path = _write_tar(tmp_path / "ok.tar", [
        _member("./top/data/a.txt", data=b"alpha"),
        _member("top/latest", tarfile.SYMTYPE, "data"),
        _member("top/latest/b.txt", data=b"beta"),  # written through an inside symlink
        _member("top/copy.txt", tarfile.LNKTYPE, "top/data/a.txt"),
    ])
    result = extract_archive(tar_path, tmp_path / "out")
    top = tmp_path / "out" / "top"
    assert (top / "data" / "b.txt").read_bytes() == b"beta"
    assert (top / "copy.txt").read_bytes() == b"alpha"
    assert (result.top_level, result.files, result.skipped) == (("top",), 4, False)


def test_extraction_resumes_and_a_finished_one_is_skipped(tmp_path: Path) -> None:
    tar_path = _write_tar(tmp_path / "a.tar", [_member(f"d/f{i}", data=bytes([i]) * 100) for i in range(5)])
    out, marker = tmp_path / "out", tmp_path / "marker.json"
    extract_archive(tar_path, out, marker=marker)
    # Simulate an interruption: the marker was never written, one file is cut short, one is missing.
    marker.unlink()
    (out / "d" / "f1").write_bytes(b"\x01" * 10)
    (out / "d" / "f3").unlink()
    result = extract_archive(tar_path, out, marker=marker)
    assert [(out / "d" / f"f{i}").read_bytes() for i in range(5)] == [bytes([i]) * 100 for i in range(5)]
    assert (result.files, result.bytes) == (5, 500)
    tar_path.unlink()  # a finished extraction needs neither the archive nor any work
    assert extract_archive(tar_path, out, marker=marker).skipped


# --------------------------------------------------------------------------- CLI


def test_cli_download_prints_a_summary_and_the_next_command(server, official_archives, tmp_path: Path) -> None:
    base, state = server
    state.files.update(official_archives)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "download", "--subset", "wfash-1m", "--out", str(out),
                                      "--base-url", f"{base}/v1", "--keep-archives"])
    assert result.exit_code == 0, result.output
    squashed = "".join(result.output.split())  # rich wraps long paths at the terminal width
    data_dir = out / "marqo-gs-dataset" / "marqo_gs_wfash_1m"
    assert f"next:gcl-vdbdatainfo{data_dir}" in squashed
    assert "2archive(s)fetched,0alreadydone" in squashed
    assert (out / "archives" / "images_wfash.tar").is_file()  # --keep-archives


def test_cli_json_reads_the_base_url_from_the_environment(
    server, official_archives, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = server
    state.files.update(official_archives)
    monkeypatch.setenv("GCL_VDB_DOWNLOAD_BASE_URL", f"{base}/v1")
    result = CliRunner().invoke(app, ["data", "download", "--subset", "wfash-1m", "--out",
                                      str(tmp_path / "out"), "--no-images", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data_dir"] == str(tmp_path / "out" / "marqo-gs-dataset" / "marqo_gs_wfash_1m")
    assert report["images_dir"] is None and report["fetched"] == 1


def test_cli_unreachable_host_is_one_line_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "download", "--subset", "wfash-1m", "--out",
                                      str(tmp_path / "out"), "--base-url", _closed_port_url()])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "cannot reach 127.0.0.1:" in errors[0] and "offline" in errors[0] and "--base-url" in errors[0]
    assert "Traceback" not in result.output


def test_cli_bad_subset_is_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "download", "--subset", "all", "--out", str(tmp_path)])
    assert result.exit_code == 2
