"""Progress reporting without printing: the library reports into a `Progress`, the CLI draws it.

Long work (downloads, synthesis, ingest, training, evaluation) takes a `progress` argument; the default
`NULL_PROGRESS` does nothing, and `gcl_vectordb.cli.output.ProgressBars` draws bars with rate and ETA.
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    """One bar. `unit` decides how the rate is shown ("B" as bytes/s, anything else as <unit>/s)."""

    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, completed: float | None = None, total: float | None = None) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "it") -> ProgressTask: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class _NullProgress:
    def task(self, description: str, total: float | None = None, unit: str = "it") -> ProgressTask:
        return _NullTask()


NULL_PROGRESS: Progress = _NullProgress()
