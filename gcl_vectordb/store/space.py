"""Free disk space, checked before the embedded engine touches its files.

The engine maps its segment files into memory and writes through the mappings: on a full disk a write
into a page the file system cannot allocate kills the process with SIGBUS — no exception, no message.
So every step that may allocate checks first that the store's file system has room for what the step
needs, and refuses with `OutOfSpace` (one line: needed, free, what to do) otherwise. Estimates, measured
with qdrant-edge-py 0.9.0 (see docs/architecture.md, "Disk space"):

- writing n points of dimension d: `n · point_bytes(d)`, twice the ≈ 2 · (12·d + 1 KiB) bytes a point
  takes in the write-ahead log and in a segment (measured: 1.8 KB per point at d = 32, 4.4 KB at 128);
- building the index (`optimize`): the points are rewritten into a new segment, `n · 2 · (12·d + 1 KiB)`;
- opening a collection: nothing on most file systems; on tmpfs and ramfs, which allocate a page when a
  mapping first touches it, reads included, the holes of the mapped segment files (`unallocated_bytes`:
  105 MiB for a fresh 5,000-point segment — three 32 MiB vector chunks and their companions);
- always `HEADROOM`, for the records, the ingest state and the engine's small files and log replay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

from gcl_vectordb.errors import OutOfSpace
from gcl_vectordb.files import MIB, existing_ancestor, format_bytes, free_bytes

HEADROOM = 16 * MIB
POINT_OVERHEAD = 1024  # payload, id tracker and index entries of one point, bytes
_TOUCH_ALLOCATING = {0x01021994: "tmpfs", 0x858458F6: "ramfs"}  # statfs f_type magic numbers
_STATFS_BYTES = 256  # ≥ sizeof(struct statfs) on every Linux ABI; f_type is its first word


def segment_bytes(dim: int) -> int:
    """Disk bytes of one point of three `dim`-dim float32 vectors in a segment, × 2 margin."""
    return 2 * (3 * dim * 4 + POINT_OVERHEAD)


def point_bytes(dim: int) -> int:
    """Disk bytes to reserve per point written: the write-ahead log and the segment (× 2 margin)."""
    return 2 * segment_bytes(dim)


@functools.lru_cache(maxsize=64)
def allocating_on_touch(path: Path) -> str | None:
    """The file system's name if it allocates mapped pages on first touch, reads included (tmpfs, ramfs);
    None otherwise or where it cannot be told (not Linux)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    buffer = ctypes.create_string_buffer(_STATFS_BYTES)
    if libc.statfs(os.fsencode(existing_ancestor(path)), buffer) != 0:
        return None
    return _TOUCH_ALLOCATING.get(ctypes.c_ulong.from_buffer(buffer).value & 0xFFFFFFFF)


def unallocated_bytes(folder: Path, *, skip: tuple[str, ...] = ()) -> int:
    """Σ (apparent size − allocated size) over the files under `folder`: the holes of sparse files,
    which a file system that allocates on touch fills when the engine maps them. `skip`: sub-folder
    names left out (the write-ahead log is read, not mapped)."""
    total = 0
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                stat = os.stat(os.path.join(current, name))
            except OSError:  # vanished meanwhile
                continue
            total += max(0, stat.st_size - stat.st_blocks * 512)
    return total


def require_space(path: Path, needed: int, what: str) -> None:
    """Raise `OutOfSpace` unless the file system of `path` has `needed` bytes free for `what`."""
    free = free_bytes(path)
    if free < needed:
        raise OutOfSpace(
            f"not enough free disk space to {what}: about {format_bytes(needed)} needed, {format_bytes(free)} "
            f"free on {existing_ancestor(path)}",
            f"free at least {format_bytes(needed - free)} there (or use a store on another disk, --qdrant PATH), "
            "then run the same command again: nothing was lost",
        )
