"""What makes an ingest resumable: a per-corpus cursor saved atomically, and a rejects file without repeats.

The cursor of a corpus counts its entries (`Dataset.product_batches`: items of `corpus_N.json`, distinct
ids of a parquet corpus) whose products are upserted and flushed or rejected. It is saved (write to a
temporary file, fsync, rename) only after the store has flushed those points, so after a crash — SIGKILL
included — the next run starts at the cursor and at worst redoes the batches after it (whose points the
store may already hold: `existing` checks skip them, and UUID5 point ids make a repeated upsert a no-op
anyway). Counting entries rather than accepted products keeps the cursor valid when a rejected product
is accepted on a later run.

The state is tied to one collection instance (its `created_at`) and one dataset version (size and mtime
of its corpus files): if either changed, the state starts over and only the store's contents decide what
is skipped. The rejects file is JSON lines (source, row, product_id, corpus, reason, detail); a reject
already in it is never written twice, so interrupted and resumed runs produce the same file. Rows the
reader rejects name their file and 1-based row (`corpus_1.json`, 17); images that fail to decode name
`images of corpus N` (row 0) and the file in `detail`; an id already stored for the other corpus is a
`duplicate-product-id` from `corpus N` (row 0).

Retrying: every run re-reads the products whose reject the files outside the corpus can cure
(`RETRYABLE_REASONS`: an image missing, outside the images folder, corrupt or too large). Once a corpus
is read to its end, `settle` rewrites the rejects file with this run's verdict on them: a product that is
stored now is recovered and its old reject dropped; one still bad keeps only its new reject.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gcl_vectordb.data.records import RETRYABLE_REASONS, Reject
from gcl_vectordb.errors import StoreError
from gcl_vectordb.files import out_of_space, write_json_atomic, write_text_atomic
from gcl_vectordb.store.records import IngestProgress

log = logging.getLogger(__name__)
STATE_FORMAT = 2  # 2: cursors count corpus entries (1 counted accepted products)


@dataclass
class Cursor:
    """A corpus's progress: `done` corpus entries handled; `complete` once its last batch is in."""

    done: int = 0
    complete: bool = False


@dataclass
class IngestState:
    """The resume state of one collection's ingest (see the module docstring)."""

    path: Path
    collection: str
    created_at: str
    dataset: list[list[Any]]
    cursors: dict[int, Cursor] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, collection: str, created_at: str, dataset: list[list[Any]]) -> IngestState:
        """The saved state if it belongs to this collection instance and dataset version, else a fresh one."""
        fresh = cls(path, collection, created_at, dataset)
        if not path.is_file():
            return fresh
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            cursors = {int(c): Cursor(int(v["done"]), bool(v["complete"])) for c, v in data["cursors"].items()}
            same = (data["format"] == STATE_FORMAT and data["collection"] == collection
                    and data["created_at"] == created_at)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable ingest state %s (%s); starting over", path, exc)
            return fresh
        if not same:
            log.warning("the ingest state %s belongs to an earlier collection %s; starting over", path, collection)
            return fresh
        if data.get("dataset") != dataset:
            log.warning("the dataset changed since the last ingest into %s; re-reading it (stored points "
                        "are skipped)", collection)
            return fresh
        return cls(path, collection, created_at, dataset, cursors)

    @property
    def resumed(self) -> bool:
        return any(c.done or c.complete for c in self.cursors.values())

    def cursor(self, corpus: int) -> Cursor:
        return self.cursors.setdefault(corpus, Cursor())

    def progress(self, corpora: tuple[int, ...], sizes: dict[int, int | None]) -> IngestProgress:
        """The progress a collection's record shows: per corpus (done, size); complete once all are in."""
        return IngestProgress(all(self.cursor(c).complete for c in corpora),
                              {c: (self.cursor(c).done, sizes.get(c)) for c in corpora})

    def save(self) -> None:
        data = {
            "format": STATE_FORMAT, "collection": self.collection, "created_at": self.created_at,
            "dataset": self.dataset, "cursors": {str(c): asdict(v) for c, v in sorted(self.cursors.items())},
        }
        try:
            write_json_atomic(self.path, data, indent=1)
        except OSError as exc:
            full = out_of_space(exc, self.path.parent, f"save the ingest state {self.path}")
            if full is not None:
                raise full from exc
            raise StoreError(f"cannot write the ingest state {self.path}: {exc}",
                             "check that the folder is writable (or pick another with the state_dir setting)") from exc


def dataset_fingerprint(root: Path) -> list[list[Any]]:
    """[name, bytes, mtime_ns] of the files products are read from (corpus JSONs, parquet files)."""
    files = [*root.glob("corpus_*.json"), *root.glob("*.parquet"), *root.glob("data/*.parquet")]
    return [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(files)]


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry.get("source"), entry.get("row"), entry.get("product_id"), entry.get("reason"))


class RejectsFile:
    """Appends rejects as JSON lines, skipping any already recorded; counts them by reason; retries the
    curable ones of an earlier run (see the module docstring)."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self._entries: list[dict[str, Any]] = []  # the file's content, in order
        self._seen: set[tuple[Any, ...]] = set()
        self._retrying: dict[int, frozenset[str]] = {}
        self._stale: dict[int, list[dict[str, Any]]] = {}  # the earlier rejects of the retried products
        self._stale_keys: set[tuple[Any, ...]] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.is_file():
            self._load()
        else:
            path.write_text("", encoding="utf-8")
        self._retry_curable()
        self._handle = path.open("a", encoding="utf-8")

    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # a crash may have cut the last line: drop it
        if len(complete) != len(text):
            self.path.write_text(complete, encoding="utf-8")
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "reason" in entry:
                self._remember(entry)

    def _retry_curable(self) -> None:
        """Take the curable rejects out of the seen set, so that this run's verdict on them is written."""
        for entry in self._entries:
            corpus = entry.get("corpus")
            if entry["reason"] in RETRYABLE_REASONS and entry.get("product_id") and isinstance(corpus, int):
                self._stale.setdefault(corpus, []).append(entry)
                self._stale_keys.add(_key(entry))
                self._seen.discard(_key(entry))
        self._retrying = {corpus: frozenset(e["product_id"] for e in entries)
                          for corpus, entries in self._stale.items()}

    def _remember(self, entry: dict[str, Any]) -> bool:
        key = _key(entry)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._entries.append(entry)
        self.counts[entry["reason"]] = self.counts.get(entry["reason"], 0) + 1
        return True

    def retrying(self, corpus: int) -> frozenset[str]:
        """Product ids of `corpus` rejected by an earlier run for a curable reason, read again in this one."""
        return self._retrying.get(corpus, frozenset())

    def add(self, rejects: Iterable[Reject], corpus: int) -> int:
        """Append the rejects not yet recorded (flushed to the OS, not fsynced); returns how many of them
        are new (a retried product rejected again for the same reason is not)."""
        lines, new = [], 0
        for reject in rejects:
            entry = {"source": reject.source, "row": reject.row, "product_id": reject.product_id,
                     "corpus": corpus, "reason": reject.reason, "detail": reject.detail}
            if self._remember(entry):
                lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
                new += _key(entry) not in self._stale_keys
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
        return new

    def settle(self, corpus: int) -> None:
        """`corpus` has been read to its end: replace the earlier rejects of its retried products by this
        run's (a reject found again keeps its place in the file), atomically; the counts follow."""
        self._retrying.pop(corpus, None)
        stale = {id(entry): _key(entry) for entry in self._stale.pop(corpus, [])}
        if not stale:
            return
        keys = set(stale.values())
        older = {id(entry) for entries in self._stale.values() for entry in entries}  # other corpora's
        again = {_key(e): e for e in self._entries if id(e) not in stale and id(e) not in older and _key(e) in keys}
        kept = []
        for entry in self._entries:
            key = _key(entry)
            if id(entry) in stale:
                if key in again:
                    kept.append(again[key])
            elif again.get(key) is not entry:
                kept.append(entry)
        self._stale_keys -= keys
        self._handle.close()
        write_text_atomic(self.path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))
        self._entries, self.counts = kept, {}
        for entry in kept:
            self.counts[entry["reason"]] = self.counts.get(entry["reason"], 0) + 1
        self._handle = self.path.open("a", encoding="utf-8")

    def sync(self) -> None:
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
