"""Safe, resumable extraction of tar archives downloaded from the internet.

Every member is checked before anything is written: an absolute path, a `..` that climbs out, a symlink or
hard link that points outside the target folder (directly or through an earlier symlink of the same
archive), or a device file / FIFO rejects the whole archive with a `DownloadError` naming the member.
Extraction itself then runs with tarfile's `filter="data"` (PEP 706) as a second line of defence.

Members are streamed (`tar.next()`), never listed all at once: the full Marqo-GS image archive holds
millions of files, and `TarFile.getmembers()` would keep a `TarInfo` for each of them in memory.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gcl_vectordb.errors import DownloadError
from gcl_vectordb.files import write_json_atomic
from gcl_vectordb.progress import NULL_PROGRESS, Progress

logger = logging.getLogger(__name__)

MAX_LINK_DEPTH = 32
"""Symlinks followed while resolving one path before it counts as a loop (Linux allows 40)."""

_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[/\\]")
_UNSAFE_HINT = "the archive is damaged or hostile; nothing was extracted — delete it and download it again"


@dataclass(frozen=True)
class ExtractResult:
    """What one extraction put on disk. `top_level` = first path components of the extracted members."""

    archive: str  # archive file name
    out_dir: Path
    top_level: tuple[str, ...]
    files: int  # regular files and links extracted (or present from an earlier, interrupted run)
    bytes: int  # sum of the extracted regular files' sizes
    skipped: bool  # True: an earlier run had completed it (marker found), nothing was done


def _iter_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one by one; the cache tarfile keeps in `tar.members` is dropped to keep memory flat."""
    while (member := tar.next()) is not None:
        yield member
        tar.members.clear()


def _resolve(parts: list[str], links: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve `parts` relative to the archive root, following the archive's own symlinks.

    Returns the resolved components, or None where the path climbs above the root, reaches an absolute
    symlink target, or loops. `links` maps a symlink's resolved path ("a/b") to its target text.
    """
    if depth > MAX_LINK_DEPTH:
        return None
    resolved: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is not None:
            if target.startswith("/"):
                return None
            followed = _resolve(resolved[:-1] + list(PurePosixPath(target).parts), links, depth + 1)
            if followed is None:
                return None
            resolved = followed
    return resolved


def _unsafe_reason(member: tarfile.TarInfo, links: dict[str, str]) -> str | None:
    """Why extracting `member` could write outside the target folder (None: it is safe)."""
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device file or FIFO"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return f"has an unsupported type ({member.type!r})"
    name = member.name
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return "has an absolute path"
    parts = list(PurePosixPath(name).parts)
    is_link = member.issym() or member.islnk()
    # A link member replaces its own last component, so only its parent is resolved through symlinks.
    resolved = _resolve(parts[:-1] if is_link else parts, links)
    if resolved is None or (is_link and parts[-1] in ("..", ".")):
        return "escapes the target folder (through '..' or a symlink)"
    if is_link:
        kind = "symlink" if member.issym() else "hard link"
        target = member.linkname
        if target.startswith("/"):
            return f"is a {kind} to an absolute path ({target})"
        # A symlink's target is relative to its own folder, a hard link's to the archive root.
        base = resolved if member.issym() else []
        if _resolve(base + list(PurePosixPath(target).parts), links) is None:
            return f"is a {kind} pointing outside the target folder ({target})"
        if member.issym():
            links["/".join([*resolved, parts[-1]])] = target
    return None


def check_archive(tar_path: Path, progress: Progress = NULL_PROGRESS) -> int:
    """Check every member of `tar_path` (reads headers only); returns the member count.

    Raises `DownloadError` naming the first unsafe member (see the module docstring for the rules).
    """
    links: dict[str, str] = {}
    count = 0
    task = progress.task(f"check {tar_path.name}", total=tar_path.stat().st_size, unit="B")
    try:
        with _open(tar_path) as tar:
            for member in _iter_members(tar):
                reason = _unsafe_reason(member, links)
                if reason is not None:
                    raise DownloadError(
                        f"{tar_path.name}: refusing to extract — member {member.name!r} {reason}", _UNSAFE_HINT
                    )
                count += 1
                if count % 1000 == 0:
                    task.update(completed=tar.offset)
            task.update(completed=tar_path.stat().st_size)
    finally:
        task.close()
    return count


def _open(tar_path: Path) -> tarfile.TarFile:
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DownloadError(
            f"{tar_path} is not a readable tar archive ({exc})", "delete it and download it again"
        ) from exc
    tar.errorlevel = 2  # raise on every extraction problem instead of logging and going on
    return tar


def _already_extracted(member: tarfile.TarInfo, target: Path) -> bool:
    """An earlier, interrupted run wrote this regular file completely (size and mtime set at the end)."""
    if not member.isreg() or target.is_symlink() or not target.is_file():
        return False
    stat = target.stat()
    return stat.st_size == member.size and int(stat.st_mtime) == int(member.mtime)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out_dir: Path) -> None:
    target = out_dir / member.name
    if member.islnk():
        if not (out_dir / member.linkname).exists():
            raise DownloadError(
                f"{member.name!r} is a hard link to {member.linkname!r}, which was not extracted",
                "the archive is incomplete or damaged; download it again",
            )
        if target.is_symlink() or target.exists():
            target.unlink()  # os.link refuses to replace a file left by an interrupted run
    try:
        tar.extract(member, out_dir, set_attrs=not member.isdir(), filter="data")
    except tarfile.FilterError as exc:
        raise DownloadError(f"refusing to extract {member.name!r}: {exc}", _UNSAFE_HINT) from exc
    except (tarfile.TarError, OSError) as exc:
        raise DownloadError(
            f"extracting {member.name!r} failed: {exc}",
            "check free disk space and permissions, then run the same command again to resume",
        ) from exc


def extract_archive(
    tar_path: Path,
    out_dir: Path,
    progress: Progress = NULL_PROGRESS,
    *,
    select: Callable[[str], bool] | None = None,
    marker: Path | None = None,
) -> ExtractResult:
    """Extract `tar_path` into `out_dir` safely; resumable; returns what was extracted.

    `select(member_name)` limits extraction to some members (all members are still safety-checked).
    `marker` (default `out_dir/.gcl-vdb-extracted/<archive>.json`) records a completed extraction: a
    re-run finds it and returns at once (even when the archive has since been deleted). An interrupted
    extraction restarts, skipping regular files that are already complete.
    """
    tar_path, out_dir = Path(tar_path), Path(out_dir)
    marker = marker or out_dir / ".gcl-vdb-extracted" / f"{tar_path.name}.json"
    done = read_extraction_marker(marker)
    if done is not None:
        logger.info("%s already extracted into %s (marker %s)", done.archive, done.out_dir, marker)
        return done
    check_archive(tar_path, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    top_level: set[str] = set()
    files = size = 0
    task = progress.task(f"extract {tar_path.name}", total=tar_path.stat().st_size, unit="B")
    try:
        with _open(tar_path) as tar:
            for member in _iter_members(tar):
                if select is not None and not select(member.name):
                    continue
                parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                if parts:
                    top_level.add(parts[0])
                if not _already_extracted(member, out_dir / member.name):
                    _extract_member(tar, member, out_dir)
                if not member.isdir():
                    files += 1
                    size += member.size if member.isreg() else 0
                task.update(completed=tar.offset)
            task.update(completed=tar_path.stat().st_size)  # the end-of-archive blocks hold no member
    finally:
        task.close()
    result = ExtractResult(tar_path.name, out_dir, tuple(sorted(top_level)), files, size, skipped=False)
    _write_extraction_marker(marker, result)
    return result


def _write_extraction_marker(marker: Path, result: ExtractResult) -> None:
    record = {
        "archive": result.archive, "out_dir": str(result.out_dir), "top_level": list(result.top_level),
        "files": result.files, "bytes": result.bytes,
    }
    write_json_atomic(marker, record)


def read_extraction_marker(marker: Path) -> ExtractResult | None:
    """The recorded result of a completed extraction, or None (no marker, or an unreadable one)."""
    try:
        record = json.loads(Path(marker).read_text(encoding="utf-8"))
        return ExtractResult(
            archive=str(record["archive"]), out_dir=Path(record["out_dir"]),
            top_level=tuple(record["top_level"]), files=int(record["files"]), bytes=int(record["bytes"]),
            skipped=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
