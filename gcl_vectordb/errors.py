"""Errors a user can cause and fix.

Every expected failure (a bad path, a missing column, the wrong model for a collection, a locked store)
raises a `GclVdbError`. The CLI prints it on one line, with the hint saying what to do, and exits 1 —
never a traceback. `assert` stays for invariants of our own code.
"""

from __future__ import annotations


class GclVdbError(Exception):
    """A user-fixable error: `message` says what went wrong, `hint` what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class DataError(GclVdbError):
    """The dataset on disk is missing, incomplete or malformed."""


class DownloadError(GclVdbError):
    """A download failed, was truncated, or an archive is unsafe to extract."""


class ModelError(GclVdbError):
    """A model, checkpoint or ONNX bundle cannot be loaded or does not fit."""


class StoreError(GclVdbError):
    """The vector store cannot be opened, reached or used as asked."""


class CollectionNotFound(StoreError):
    """The named collection does not exist in the store."""


class CollectionInUse(StoreError):
    """Another process (or another open store in this one) holds the collection; `holder` says who."""

    def __init__(self, message: str, hint: str | None = None, *, holder: str = "another process") -> None:
        super().__init__(message, hint)
        self.holder = holder


class OutOfSpace(StoreError):
    """The disk has too little free space for the step; the message says how much is needed and free."""


class PartialCollection(StoreError):
    """The collection's ingest has not completed, so results over it would be silently incomplete."""


class StoreUnreachable(StoreError):
    """The Qdrant server cannot be reached (closed port, DNS, timeout)."""


class ModelMismatch(StoreError):
    """The model at hand is not the one the collection was built with."""


class ConfigError(GclVdbError):
    """A setting, override or option value is invalid."""


class ExportError(GclVdbError):
    """An ONNX export failed or its towers do not reproduce the torch model within tolerance."""
