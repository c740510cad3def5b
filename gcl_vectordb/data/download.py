"""Download a Marqo-GS sub-dataset from the public archives (docs/protocol.md, "The official layout"),
resumably and safely.

The dataset tar holds the three sub-dataset folders; only the chosen one is extracted. The images
archive of the subset is extracted next to it, giving the layout the official evaluation code expects:

    OUT/marqo-gs-dataset/marqo_gs_wfash_1m/   corpus_1.json, corpus_2.json, query_*_product_id_*.csv ...
    OUT/marqo-gs-dataset/images_wfash/        the JPEG files `image_local` points into
    OUT/archives/                             the downloaded tars (deleted after extraction by default)
    OUT/.gcl-vdb-download/                    extraction markers: a re-run skips finished archives

Every step resumes: a partial download continues with an HTTP Range request, a finished download is not
fetched again, an interrupted extraction skips files already complete, a finished one is skipped.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from gcl_vectordb.data.archive import ExtractResult, extract_archive, read_extraction_marker
from gcl_vectordb.data.fetch import complete_marker, download_file, fetch
from gcl_vectordb.errors import ConfigError, DownloadError
from gcl_vectordb.progress import NULL_PROGRESS, Progress

__all__ = [
    "BASE_URL_ENV", "DATASET_ARCHIVE", "DEFAULT_BASE_URL", "SUBSETS", "ArchiveReport", "DownloadConfig",
    "DownloadReport", "Subset", "download_file", "download_subset", "extract_archive",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://marqo-gcl-public.s3.amazonaws.com/v1"
BASE_URL_ENV = "GCL_VDB_DOWNLOAD_BASE_URL"
"""Environment variable the CLI reads for a mirror of the archives (same file names under one URL)."""
DATASET_ARCHIVE = "marqo-gs-dataset.tar"
ARCHIVES_DIR = "archives"
MARKERS_DIR = ".gcl-vdb-download"


@dataclass(frozen=True)
class Subset:
    """A Marqo-GS sub-dataset: its CLI name, its folder in the dataset tar, and its images archive."""

    name: str
    folder: str
    images_archive: str


SUBSETS: dict[str, Subset] = {
    s.name: s
    for s in (
        Subset("wfash-1m", "marqo_gs_wfash_1m", "images_wfash.tar"),
        Subset("fashion-5m", "marqo_gs_fashion_5m", "images_archive.tar"),
        Subset("full-10m", "marqo_gs_full_10m", "images_archive.tar"),
    )
}


@dataclass(frozen=True)
class DownloadConfig:
    """What to download and where. `timeout` in seconds per socket operation; `backoff` in seconds."""

    subset: str
    out: Path
    base_url: str = DEFAULT_BASE_URL
    images: bool = True  # False: the dataset tar only (`--no-images`)
    keep_archives: bool = False  # False: delete each tar once it is extracted
    retries: int = 5
    chunk_size: int = 1 << 20
    timeout: float = 30.0
    backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ConfigError(f"unknown subset {self.subset!r}", f"use one of: {', '.join(SUBSETS)}")
        object.__setattr__(self, "out", Path(self.out))
        base = self.base_url.strip().rstrip("/")
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"--base-url must be an http(s) URL, got {self.base_url!r}",
                f"for example {DEFAULT_BASE_URL}",
            )
        object.__setattr__(self, "base_url", base)
        if self.retries < 0 or self.chunk_size <= 0 or self.timeout <= 0 or self.backoff < 0:
            raise ConfigError("retries and backoff must be ≥ 0, chunk_size and timeout > 0")

    def url(self, archive: str) -> str:
        return f"{self.base_url}/{archive}"


@dataclass(frozen=True)
class ArchiveReport:
    """One archive of a `download_subset` run."""

    name: str
    url: str
    status: Literal["fetched", "skipped"]  # skipped: extracted by an earlier run
    received: int  # bytes transferred by this run
    resumed_from: int  # bytes a partial file from an earlier run already held
    extracted_to: Path
    files: int  # files (and links) the archive put on disk
    kept: bool  # the tar itself is still on disk


@dataclass(frozen=True)
class DownloadReport:
    """The result: `data_dir` is what to pass as `--data`; `images_dir` holds the images (or None)."""

    subset: str
    out: Path
    data_dir: Path
    images_dir: Path | None
    archives: tuple[ArchiveReport, ...]
    fetched: int
    skipped: int
    bytes_received: int


def find_subset_folder(root: Path, folder: str, max_depth: int = 3) -> Path | None:
    """The extracted sub-dataset folder named `folder` at most `max_depth` levels below `root`."""
    for depth in range(max_depth):
        pattern = "/".join(["*"] * depth + [folder])
        found = sorted(p for p in Path(root).glob(pattern) if p.is_dir())
        if found:
            return found[0]
    return None


def images_folder(result: ExtractResult) -> Path:
    """Where an images archive's files are: its single top-level folder, else the extraction folder."""
    if len(result.top_level) == 1 and (result.out_dir / result.top_level[0]).is_dir():
        return result.out_dir / result.top_level[0]
    return result.out_dir


def download_subset(config: DownloadConfig, progress: Progress = NULL_PROGRESS) -> DownloadReport:
    """Download and extract one sub-dataset (and its images unless `config.images` is False).

    Raises `DownloadError` (one line, with what to do) for an unreachable host, an HTTP error, a size
    mismatch, an unsafe archive, or a dataset tar without the subset's folder.
    """
    subset = SUBSETS[config.subset]
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    markers = out / MARKERS_DIR

    def has_subset_folder(_: ExtractResult) -> bool:
        return find_subset_folder(out, subset.folder) is not None

    dataset, _ = _archive_step(
        config, DATASET_ARCHIVE, out, markers / f"{DATASET_ARCHIVE}.{subset.folder}.json",
        select=lambda name: subset.folder in PurePosixPath(name).parts, is_done=has_subset_folder,
        progress=progress,
    )
    data_dir = find_subset_folder(out, subset.folder)
    if data_dir is None:
        raise DownloadError(
            f"{DATASET_ARCHIVE} holds no folder {subset.folder}",
            "the mirror may serve another file; check --base-url, delete OUT/archives and run again",
        )
    reports = [dataset]
    images_dir = None
    if config.images:
        images, extracted = _archive_step(
            config, subset.images_archive, data_dir.parent, markers / f"{subset.images_archive}.json",
            select=None, is_done=lambda done: images_folder(done).is_dir(), progress=progress,
        )
        reports.append(images)
        images_dir = images_folder(extracted)
    fetched = sum(r.status == "fetched" for r in reports)
    logger.info("%s ready in %s (%d archive(s) fetched, %d skipped)", subset.name, data_dir, fetched,
                len(reports) - fetched)
    return DownloadReport(
        subset=subset.name, out=out, data_dir=data_dir, images_dir=images_dir, archives=tuple(reports),
        fetched=fetched, skipped=len(reports) - fetched, bytes_received=sum(r.received for r in reports),
    )


def _archive_step(
    config: DownloadConfig,
    name: str,
    target: Path,
    marker: Path,
    *,
    select: Callable[[str], bool] | None,
    is_done: Callable[[ExtractResult], bool],
    progress: Progress,
) -> tuple[ArchiveReport, ExtractResult]:
    """Fetch one archive and extract it into `target`, unless an earlier run finished both."""
    url = config.url(name)
    archive = config.out / ARCHIVES_DIR / name
    done = read_extraction_marker(marker)
    if done is not None and is_done(done):
        logger.info("%s: already extracted into %s; skipping", name, done.out_dir)
        return ArchiveReport(name, url, "skipped", 0, 0, done.out_dir, done.files, archive.exists()), done
    marker.unlink(missing_ok=True)  # stale: what it described is gone from disk
    fetched = fetch(
        url, archive, progress=progress, retries=config.retries, chunk_size=config.chunk_size,
        timeout=config.timeout, backoff=config.backoff,
    )
    result = extract_archive(archive, target, progress, select=select, marker=marker)
    if not config.keep_archives:
        archive.unlink(missing_ok=True)
        complete_marker(archive).unlink(missing_ok=True)
    report = ArchiveReport(
        name, url, "fetched", fetched.received, fetched.resumed_from, result.out_dir, result.files,
        kept=config.keep_archives,
    )
    return report, result
