"""Files written so that a crash leaves the old content or the new, never a mix; free disk space; CPU counts.

Every durable file of the project (ingest state, collection records, checkpoints, TREC runs, demo stages,
extraction markers) is written through `atomic_output`: a temporary file in the same folder, flushed and
fsynced, renamed over the target, and the folder fsynced so that the rename itself survives a power loss.
A write that finds the disk full becomes one clear `OutOfSpace` line through `out_of_space`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gcl_vectordb.errors import OutOfSpace

MIB = 1 << 20


@contextlib.contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on success it replaces `path` durably, on any
    error (or KeyboardInterrupt) it is removed and `path` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = "b" not in mode
    try:
        with open(tmp, mode, **({"encoding": "utf-8", "newline": "\n"} if text else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_output(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    with atomic_output(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json_atomic(path: Path, value: Any, *, indent: int | None = 2) -> Path:
    """`value` as UTF-8 JSON (non-JSON values such as paths via `str`), then a newline."""
    return write_text_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform or file system; the rename is done either way
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def existing_ancestor(path: Path) -> Path:
    """`path` made absolute, or its nearest folder that exists (where a file is about to be written)."""
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes this process may still write on the file system holding `path` (or its nearest ancestor)."""
    return shutil.disk_usage(existing_ancestor(path)).free


def format_bytes(n: int) -> str:
    """`12.3 MiB` / `4.5 GiB` (negative counts show as 0)."""
    n = max(n, 0)
    return f"{n / MIB:,.1f} MiB" if n < 10 * 1024 * MIB else f"{n / (1024 * MIB):,.1f} GiB"


def out_of_space(exc: BaseException, path: Path, what: str) -> OutOfSpace | None:
    """An `OutOfSpace` for an ENOSPC/EDQUOT `OSError`, or for an error of the Qdrant engine reporting one
    (it raises plain exceptions carrying the OS message); None for any other error."""
    enospc = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not enospc and not any(mark in str(exc) for mark in ("No space left on device", "os error 28")):
        return None
    return OutOfSpace(
        f"the disk is full: could not {what} ({format_bytes(free_bytes(path))} free on {existing_ancestor(path)})",
        "free some space there (or use a store on another disk, --qdrant PATH), then run the same command "
        "again: what was written before is kept",
    )


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
