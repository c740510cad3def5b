"""One process at a time: an exclusive lock on a collection (or any folder a command owns), taken before
anything of it is read or written, and held until the command closes the store.

    with hold(lock_path(root, "gs10m"), "collection gs10m"):
        ...  # nobody else opens, writes or drops gs10m meanwhile

A second process — or a second open in the same process — gets `CollectionInUse` at once, with one line
naming the holder: `collection gs10m is in use by pid 1234 (gcl-vdb ingest --collection gs10m …, since
10:02:11)`. The lock is `flock(LOCK_EX | LOCK_NB)` on a lock file that is never deleted, so a folder can be
dropped and created again under it; the kernel releases it when its holder exits, even by SIGKILL, so a
lock is never stale. After taking it the holder writes its pid, command line and start time into the file
for the refused ones to read. See docs/architecture.md ("Concurrency and locks").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from gcl_vectordb.errors import CollectionInUse, StoreError

LOCKS_DIR = ".locks"
"""Folder of an embedded store's lock files; collection names start with a letter or digit, so it is
never a collection's folder."""
_COMMAND_CHARS = 160
_SECRET = re.compile(r"key|token|secret|password", re.IGNORECASE)  # options whose values never leave the process
_READ_TRIES = 10  # the holder writes its details right after locking: a refused process may be early


def lock_path(root: Path, name: str) -> Path:
    """The lock file of collection `name` in the embedded store at `root` (outside the collection's folder,
    which `drop` deletes and `create` makes again while the lock is held)."""
    return root / LOCKS_DIR / f"{name}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: process id, command line (secrets removed: `this_command`) and start time (ISO)."""

    pid: int
    command: str
    since: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(os.getpid(), this_command(), datetime.now().astimezone().isoformat(timespec="seconds"))

    def describe(self) -> str:
        """`pid 1234 (gcl-vdb ingest --collection gs10m …, since 10:02:11)`."""
        return f"pid {self.pid} ({self.command}, since {self.since[11:19] or self.since})"


def this_command() -> str:
    """The command line of this process as a person typed it, `gcl-vdb …` for `python -m gcl_vectordb …`,
    with the values of options named like a secret (`--api-key`, `--token`, …) and the credentials in URLs
    removed: the lock file is readable by others, and refused commands print it."""
    argv = list(sys.argv) or ["python"]
    program = Path(argv[0]).name
    if program in ("__main__.py", "gcl-vdb", "gcl_vectordb"):
        program = "gcl-vdb"
    elif program in ("-c", "-m", ""):  # python -c CODE …: sys.argv[0] is "-c"
        program = f"python {program}".strip()
    words = [program]
    hide_next = False
    for arg in argv[1:]:
        name, sep, _ = arg.partition("=")
        secret = arg.startswith("-") and _SECRET.search(name) is not None
        words.append("***" if hide_next else f"{name}=***" if secret and sep else arg)
        hide_next = secret and not sep
    text = re.sub(r"(://)[^/@\s]+@", r"\1", " ".join(words))  # user:password@ in a server URL
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"


class Lock:
    """An exclusive, non-blocking lock on `path`; `what` names the locked thing in messages."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"Lock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Lock:
        """Take the lock or raise `CollectionInUse` naming the holder; never waits."""
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock {self.what}: cannot create {self.path}: {exc.strerror or exc}",
                             "check that the folder is writable (--qdrant PATH)") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise in_use(self.what, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _write_holder(fd, Holder.this_process())
        return self

    def release(self) -> None:
        """Let go (the lock file stays: deleting it would let two processes lock two different files)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold(path: Path, what: str) -> Lock:
    """Take the lock on `path` now (one call for any command: `with hold(path, "…"):`); see `Lock`."""
    return Lock(path, what).acquire()


def in_use(what: str, holder: Holder | None) -> CollectionInUse:
    who = holder.describe() if holder is not None else "another process"
    return CollectionInUse(f"{what} is in use by {who}", "wait for it to finish or stop it, then run the command "
                           "again", holder=who)


def _write_holder(fd: int, holder: Holder) -> None:
    data = json.dumps(asdict(holder)).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:  # a full disk: the lock holds all the same, only the holder's details are missing
        pass


def _read_holder(fd: int) -> Holder | None:
    for _ in range(_READ_TRIES):
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
            if isinstance(data, dict):
                return Holder(int(data["pid"]), str(data["command"]), str(data["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.02)
    return None

