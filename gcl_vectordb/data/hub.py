"""Download Marqo-GS-10M from the Hugging Face Hub: the parquet splits, with the hub's own client.

    report = download_hub(HubDownloadConfig(out=Path("gcl-vdb-work/data"), splits=("in-domain", "novel-query")))

The repository `Marqo/marqo-GS-10M` holds one set of parquet files per split (docs/protocol.md, "The
Hugging Face parquet layout"); only the chosen splits are fetched (`snapshot_download` with
`allow_patterns`), into `out/data/<hf_split>-NNNNN-of-NNNNN.parquet`, which `open_dataset(out)` reads
directly. Resuming is the hub client's: a dropped connection continues the file with an HTTP Range request
within the run, a re-run skips every finished file (checked against the repository's ETag), and a file
stored with Xet resumes from the client's chunk cache. One limit of the client (huggingface_hub ≥ 2): a
plain-HTTP file cut by a killed process starts over on the re-run (its partial bytes are private to the
process that wrote them); the split's other files are not fetched again. The client honours `HF_ENDPOINT`
(a mirror; `endpoint` overrides it) and `HF_TOKEN`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcl_vectordb.data.layouts import open_dataset
from gcl_vectordb.data.records import SPLITS, Split, get_split
from gcl_vectordb.errors import ConfigError, DataError, DownloadError

log = logging.getLogger(__name__)

HUB_REPO = "Marqo/marqo-GS-10M"
HUB_HINT = "check your network (or HF_ENDPOINT for a mirror) and run the same command again to resume"


@dataclass(frozen=True)
class HubDownloadConfig:
    """Which splits (CLI or HF names) of which dataset repository, into `out`. `endpoint`: the hub's URL
    (None: the client's default, `HF_ENDPOINT` or huggingface.co); `revision`: a branch, tag or commit."""

    out: Path
    splits: tuple[str, ...] = tuple(s.name for s in SPLITS)
    repo_id: str = HUB_REPO
    revision: str | None = None
    endpoint: str | None = None
    token: str | None = None
    max_workers: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if not self.splits:
            raise ConfigError("no split to download", f"use --splits with some of {', '.join(s.hf_name for s in SPLITS)}")
        resolved = tuple(dict.fromkeys(get_split(name).name for name in self.splits))  # DataError if unknown
        object.__setattr__(self, "splits", resolved)
        if self.max_workers < 1:
            raise ConfigError(f"max_workers must be ≥ 1, got {self.max_workers}")

    def resolved_splits(self) -> tuple[Split, ...]:
        return tuple(get_split(name) for name in self.splits)

    def patterns(self) -> list[str]:
        """The files of the chosen splits, in the repository's `data/` folder or at its top."""
        return [f"{folder}{split.hf_name}-*.parquet" for split in self.resolved_splits() for folder in ("data/", "")]


@dataclass(frozen=True)
class HubFile:
    """One file of the download: its path in the repository, its size, whether this run fetched it."""

    path: str
    bytes: int
    fetched: bool


@dataclass(frozen=True)
class HubDownloadReport:
    """What `download_hub` did: `data_dir` is what to pass as `--data`; `commit` the revision fetched."""

    repo_id: str
    commit: str
    out: Path
    data_dir: Path
    splits: tuple[str, ...]
    files: tuple[HubFile, ...]
    fetched: int
    skipped: int
    bytes_total: int


def download_hub(config: HubDownloadConfig) -> HubDownloadReport:
    """Fetch the chosen splits (see the module docstring); the hub client draws its own progress bars.

    Raises DownloadError (host unreachable, repository or revision unknown, access refused, a split with no
    files) with what to do; a re-run resumes where an interruption stopped.
    """
    # huggingface_hub (0.4 s, and its HTTP stack): imported for this download only
    from huggingface_hub import snapshot_download

    splits = config.resolved_splits()
    options: dict[str, Any] = {
        "repo_id": config.repo_id, "repo_type": "dataset", "revision": config.revision,
        "allow_patterns": config.patterns(), "local_dir": config.out, "endpoint": config.endpoint,
        "token": config.token, "max_workers": config.max_workers,
    }
    config.out.mkdir(parents=True, exist_ok=True)
    with _hub_errors(config):
        planned = snapshot_download(**options, dry_run=True)
        missing = [s.hf_name for s in splits if not any(_split_of(p.filename) == s for p in planned)]
        if missing:
            raise DownloadError(f"{config.repo_id} has no parquet files for split(s) {', '.join(missing)}",
                                f"choose among the repository's splits ({', '.join(s.hf_name for s in SPLITS)})")
        snapshot_download(**options)
    files = tuple(HubFile(p.filename, int(p.file_size or 0), bool(p.will_download)) for p in planned)
    _check_readable(config.out, splits)
    fetched = sum(f.fetched for f in files)
    log.info("%s: %d file(s) fetched, %d already present in %s", config.repo_id, fetched, len(files) - fetched,
             config.out)
    return HubDownloadReport(
        repo_id=config.repo_id, commit=planned[0].commit_hash if planned else "", out=config.out,
        data_dir=config.out, splits=tuple(s.name for s in splits), files=files, fetched=fetched,
        skipped=len(files) - fetched, bytes_total=sum(f.bytes for f in files),
    )


def _split_of(filename: str) -> Split | None:
    name = filename.rsplit("/", 1)[-1]
    return next((s for s in SPLITS if name.startswith(f"{s.hf_name}-")), None)


def _check_readable(out: Path, splits: tuple[Split, ...]) -> None:
    try:
        present = open_dataset(out).splits
    except DataError as exc:
        raise DownloadError(f"the files downloaded into {out} are not a Marqo-GS parquet dataset: {exc.message}",
                            "delete the folder and download again") from None
    absent = [s.hf_name for s in splits if s not in present]
    if absent:
        raise DownloadError(f"{out} lacks the split(s) {', '.join(absent)} after the download", HUB_HINT)


@contextlib.contextmanager
def _hub_errors(config: HubDownloadConfig) -> Iterator[None]:
    """The hub client's exceptions as one-line DownloadErrors (its dry run wraps the cause: look at it)."""
    from huggingface_hub import errors

    where, repo = config.endpoint or "the Hugging Face Hub", config.repo_id
    try:
        yield
    except (errors.EntryNotFoundError, OSError) as exc:  # the hub's errors are OSErrors, but one
        cause = exc.__cause__ if isinstance(exc, errors.DryRunError) and exc.__cause__ is not None else exc
        if isinstance(cause, errors.GatedRepoError):
            raise DownloadError(f"{repo} is gated: accept its terms on the hub", "then set HF_TOKEN") from None
        if isinstance(cause, errors.RepositoryNotFoundError):
            raise DownloadError(f"dataset repository {repo} not found on {where}",
                                "check the repository (and HF_TOKEN for a private one)") from None
        if isinstance(cause, errors.RevisionNotFoundError):
            raise DownloadError(f"revision {config.revision!r} of {repo} not found on {where}",
                                "check --revision") from None
        reason = str(cause).strip().splitlines()[0][:300] if str(cause).strip() else type(cause).__name__
        raise DownloadError(f"downloading {repo} from {where} failed: {reason}", HUB_HINT) from None
