"""Resumable HTTP(S) downloads of large files with the standard library (urllib).

`download_file` writes `<dest>.part`, resumes it with `Range: bytes=N-`, retries with exponential backoff
on connection errors, timeouts and truncated bodies (each retry resumes), checks the final size against
the size the server announced, and renames the finished file atomically. A `<dest>.complete` marker lets
a re-run skip the file without any request.

Server answers handled on resume: 206 with `Content-Range` (append), 200 (the server ignored Range:
start over cleanly), 416 (nothing left to send: the partial file is complete if its size is the remote
size). A host that cannot be reached at all fails at once with a one-line `DownloadError`.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

from gcl_vectordb import __version__
from gcl_vectordb.errors import DownloadError
from gcl_vectordb.progress import NULL_PROGRESS, Progress, ProgressTask

logger = logging.getLogger(__name__)

USER_AGENT = f"gcl-vdb/{__version__} (+urllib)"
MAX_BACKOFF_S = 30.0
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.IGNORECASE)
_PERMANENT_HTTP = {400, 401, 403, 404, 405, 410, 451}


@dataclass(frozen=True)
class FetchResult:
    """One downloaded file: where it is, its size, and what this call had to transfer."""

    path: Path
    size: int  # bytes on disk
    received: int  # bytes transferred by this call (0 when skipped)
    resumed_from: int  # size of the partial file this call started from
    skipped: bool  # True: a completion marker from an earlier run was found, no request was made


class _Retry(Exception):
    """A transient failure; the next attempt resumes from what is on disk."""


@dataclass
class _State:
    url: str
    part: Path
    total: int | None  # the remote size as announced (None: not known yet)
    connected: bool = False  # has the server answered at least once in this call?
    received: int = 0


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def complete_marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".complete")


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


def is_complete(dest: Path) -> bool:
    """`dest` was finished by an earlier call (its marker records the size it still has)."""
    try:
        record = json.loads(complete_marker(dest).read_text(encoding="utf-8"))
        return dest.is_file() and dest.stat().st_size == int(record["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


class FetchOptions(TypedDict, total=False):
    """Keyword options of `fetch` (defaults there): retries, chunk_size (bytes), timeout and backoff (s)."""

    retries: int
    chunk_size: int
    timeout: float
    backoff: float


def download_file(
    url: str, dest: Path, *, progress: Progress = NULL_PROGRESS, **options: Unpack[FetchOptions]
) -> Path:
    """Download `url` to `dest` (resumable, size-checked, atomic); returns `dest`. Options: see `fetch`."""
    return fetch(url, dest, progress=progress, **options).path


def fetch(
    url: str,
    dest: Path,
    *,
    progress: Progress = NULL_PROGRESS,
    retries: int = 5,
    chunk_size: int = 1 << 20,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> FetchResult:
    """Download `url` to `dest`, resuming `<dest>.part`; up to `retries` retries after the first attempt.

    Waits `backoff · 2^(k-1)` seconds (at most 30) before retry k; `timeout` (seconds) bounds each socket
    operation; the body is read `chunk_size` bytes at a time. Progress: one task, unit "B".
    """
    dest = Path(dest)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {url!r}", "only http:// and https:// URLs are supported")
    if is_complete(dest):
        logger.info("%s is already complete; skipping the download", dest)
        return FetchResult(dest, dest.stat().st_size, 0, 0, skipped=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    resumed_from = part.stat().st_size if part.exists() else 0
    state = _State(url, part, total=_read_meta_total(dest, url))
    task = progress.task(f"download {dest.name}", total=state.total, unit="B")
    problem = "no attempt was made"
    try:
        for attempt in range(retries + 1):
            if attempt:
                delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_S)
                logger.warning("%s: %s; retry %d/%d in %.1f s", dest.name, problem, attempt, retries, delay)
                time.sleep(delay)
            try:
                _attempt(state, dest, chunk_size, timeout, task)
                break
            except _Retry as exc:
                problem = str(exc)
        else:
            have = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"download of {url} failed after {retries + 1} attempt(s): {problem}",
                f"run the same command again to resume from {have:,} bytes, or use a mirror (--base-url)",
            )
    finally:
        task.close()
    size = part.stat().st_size
    os.replace(part, dest)
    complete_marker(dest).write_text(json.dumps({"url": url, "size": size}), encoding="utf-8")
    _meta_path(dest).unlink(missing_ok=True)
    return FetchResult(dest, size, state.received, resumed_from, skipped=False)


def _attempt(state: _State, dest: Path, chunk_size: int, timeout: float, task: ProgressTask) -> None:
    """One request; returns when `.part` holds the whole file, raises `_Retry` to try again."""
    offset = state.part.stat().st_size if state.part.exists() else 0
    request = urllib.request.Request(
        state.url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    )
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        # The scheme was checked in `fetch`: http(s) only, never file://.
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        state.connected = True
        with exc:
            _handle_http_error(state, dest, exc, offset)
        return
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if not state.connected:
            raise unreachable_error(state.url, exc) from None
        raise _Retry(f"connection failed ({_reason(exc)})") from None
    state.connected = True
    with response:
        start, total = _plan(state, dest, response, offset)
        task.update(completed=start, total=total)
        broke_off = _stream(response, state, append=start > 0, chunk_size=chunk_size, task=task)
    _check_size(state, dest, state.part.stat().st_size, broke_off)


def _stream(
    response: http.client.HTTPResponse, state: _State, *, append: bool, chunk_size: int, task: ProgressTask
) -> str | None:
    """Copy the body into `.part`; returns why the transfer broke off (None: the server ended it)."""
    try:
        out = state.part.open("ab" if append else "wb")
    except OSError as exc:
        raise _disk_error(state.part, exc) from None
    with out:
        while True:
            try:
                chunk = response.read(chunk_size)
            except (OSError, http.client.HTTPException) as exc:
                return f"the transfer broke off: {_reason(exc)}"
            if not chunk:
                return None
            try:
                out.write(chunk)
            except OSError as exc:
                raise _disk_error(state.part, exc) from None
            state.received += len(chunk)
            task.advance(len(chunk))


def _disk_error(part: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write {part}: {_reason(exc)}",
        "free disk space (or fix permissions), then run the same command again to resume",
    )


def _plan(state: _State, dest: Path, response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Decide where the body starts (0: rewrite `.part`; offset: append) and the remote size."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
        start = int(match.group(1)) if match and match.group(1) else None
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        if start != offset:
            _discard(state, dest)
            raise _Retry(f"the server sent bytes from {start}, not {offset}; starting over")
        if state.total is not None and total is not None and total != state.total:
            _discard(state, dest)
            raise _Retry(f"the remote file changed size ({state.total:,} → {total:,} bytes); starting over")
    else:
        if offset:
            logger.warning("%s: the server ignored the Range request; downloading from the start", dest.name)
        start = 0
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    if total is not None and total != state.total:
        state.total = total
        _meta_path(dest).write_text(json.dumps({"url": state.url, "total": total}), encoding="utf-8")
    return start, total


def _handle_http_error(state: _State, dest: Path, exc: urllib.error.HTTPError, offset: int) -> None:
    if exc.code == 416 and offset:
        match = _CONTENT_RANGE.fullmatch((exc.headers.get("Content-Range") or "").strip())
        remote = int(match.group(3)) if match and match.group(3) != "*" else None
        if remote == offset and state.total in (None, remote):
            return  # the partial file already holds every byte
        expected = state.total if state.total is not None else remote
        _discard(state, dest)
        raise _Retry(
            f"size mismatch: the server now reports {_bytes(remote)} for a file announced as "
            f"{_bytes(expected)} and partly downloaded ({offset:,} bytes); starting over"
        )
    if exc.code in _PERMANENT_HTTP:
        name = urllib.parse.urlsplit(state.url).path.rsplit("/", 1)[-1]
        raise DownloadError(
            f"{state.url}: HTTP {exc.code} {exc.reason}",
            f"check --base-url: the server must serve {name} (public, no login)",
        )
    raise _Retry(f"HTTP {exc.code} {exc.reason}")


def _check_size(state: _State, dest: Path, have: int, broke_off: str | None) -> None:
    """Raise `_Retry` while bytes are missing; the file is complete when `have` = the announced size."""
    if state.total is None:
        if broke_off:
            raise _Retry(broke_off)
        logger.warning("%s: the server announced no size; %s bytes arrived, unchecked", state.url, have)
        return
    if have < state.total:
        why = broke_off or "the connection closed early"
        raise _Retry(f"size mismatch: {have:,} of {state.total:,} bytes arrived ({why})")
    if have > state.total:
        _discard(state, dest)
        raise DownloadError(
            f"size mismatch for {state.url}: {have:,} bytes on disk, but the server announced {state.total:,}",
            "the mirror may be serving a different file; the partial file was deleted — run the command again",
        )


def _discard(state: _State, dest: Path) -> None:
    state.part.unlink(missing_ok=True)
    _meta_path(dest).unlink(missing_ok=True)


def _read_meta_total(dest: Path, url: str) -> int | None:
    """The remote size recorded by an earlier call for the same URL (None when unknown)."""
    try:
        record = json.loads(_meta_path(dest).read_text(encoding="utf-8"))
        return int(record["total"]) if record.get("url") == url else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unreachable_error(url: str, exc: BaseException) -> DownloadError:
    """The one-line error for a host that cannot be reached (offline machine, DNS failure, refused)."""
    host = urllib.parse.urlsplit(url).netloc or url
    return DownloadError(
        f"cannot reach {host} ({_reason(exc)})",
        "the machine may be offline; pass a reachable mirror with --base-url URL "
        "(or GCL_VDB_DOWNLOAD_BASE_URL), then run the same command again",
    )


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = str(reason) or type(reason).__name__
    return " ".join(text.split())  # one line, whatever the OS message looks like


def _bytes(value: int | None) -> str:
    return "an unknown size" if value is None else f"{value:,} bytes"
