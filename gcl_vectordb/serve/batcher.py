"""Dynamic micro-batching: concurrent requests share one model call, behind a bounded queue.

    batcher = MicroBatcher(process, max_batch=16, max_wait_s=0.002, queue_size=256)
    batcher.start()
    result = await asyncio.wrap_future(batcher.submit(item))   # QueueFull at once when the queue is full
    batcher.close()                                            # no new items; finishes every queued one

One worker thread takes the first queued item, waits at most `max_wait_s` for more (up to `max_batch`),
and calls `process(items) -> results` once for all of them (`len(results) == len(items)`, in order).
When a whole batch fails, each item is retried alone, so that one bad item fails only its own caller.
The queue never holds more than `queue_size` items: a caller that finds it full is refused at once, so
neither memory nor waiting time grows without bound under overload.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from gcl_vectordb.errors import ConfigError

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueFull(Exception):
    """The batcher's queue is full (or the batcher is closing): try again later."""


@dataclass(frozen=True)
class BatchLimits:
    """`max_batch` items per model call; `max_wait_s` the longest the first item waits for company;
    `queue_size` the most items waiting (beyond that, `submit` refuses).

    Defaults measured on the gcl-tiny ONNX text tower, 2 CPU cores (benchmarks/serve.py): batches of 8–16
    cost ~30 % less CPU per query than single calls, 32 no less than 16; waiting for company only adds
    latency, since batches form by themselves while the worker is busy (`max_wait_s` 0)."""

    max_batch: int = 16
    max_wait_s: float = 0.0
    queue_size: int = 256

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.queue_size < 1:
            raise ConfigError(f"max batch and queue size must be ≥ 1, got {self.max_batch} and {self.queue_size}")
        if not 0 <= self.max_wait_s <= 1:
            raise ConfigError(f"the batch wait must be between 0 and 1000 ms, got {self.max_wait_s * 1000:g} ms")


class MicroBatcher(Generic[Item, Result]):
    """Runs `process` on batches of submitted items in one worker thread (see the module docstring).

    `on_batch(size, seconds)` is told about every batch run (metrics); `depth()` is the number of items
    queued or being processed.
    """

    def __init__(
        self, process: Callable[[list[Item]], Sequence[Result]], limits: BatchLimits = BatchLimits(),
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ) -> None:
        self.process, self.limits, self.on_batch = process, limits, on_batch
        self._queue: queue.Queue[tuple[Item, Future[Result]] | None] = queue.Queue(maxsize=limits.queue_size)
        self._closing = threading.Event()
        self._busy = 0
        self._thread = threading.Thread(target=self._work, name="gcl-vdb-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: Item) -> Future[Result]:
        """Queue `item`; its future gets the result or the exception. Raises QueueFull at once."""
        if self._closing.is_set():
            raise QueueFull("the service is shutting down")
        future: Future[Result] = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFull(f"{self.limits.queue_size} requests are already waiting") from None
        return future

    @property
    def running(self) -> bool:
        """Taking new items: started and not closing."""
        return self._thread.is_alive() and not self._closing.is_set()

    def depth(self) -> int:
        return self._queue.qsize() + self._busy

    def close(self, timeout_s: float | None = None) -> bool:
        """Refuse new items, finish the queued ones, stop the worker; False if it did not stop in time."""
        if not self._closing.is_set():
            self._closing.set()
            if self._thread.is_alive():
                self._queue.put(None)  # wakes the worker; queued items come first
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # ---- the worker thread
    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)
            self._busy = 0

    def _next_batch(self) -> list[tuple[Item, Future[Result]]] | None:
        """Block for a first item, then gather more until `max_batch` or `max_wait_s` after the first."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.limits.max_wait_s
        while len(batch) < self.limits.max_batch:
            try:
                remaining = deadline - time.monotonic()
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:  # closing: run what we have, then stop at the next call
                self._queue.put(None)
                break
            batch.append(entry)
        self._busy = len(batch)
        return batch

    def _run(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        batch = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        started = time.perf_counter()
        try:
            results = self.process([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"process returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - each caller gets its own outcome below
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            log.info("a batch of %d failed (%s); running its items one by one", len(batch), exc)
            for entry in batch:
                self._run_one(*entry)
            return
        self._observe(len(batch), time.perf_counter() - started)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _run_one(self, item: Item, future: Future[Result]) -> None:
        started = time.perf_counter()
        try:
            result = self.process([item])[0]
        except Exception as exc:  # noqa: BLE001 - delivered to the caller
            future.set_exception(exc)
            return
        self._observe(1, time.perf_counter() - started)
        future.set_result(result)

    def _observe(self, size: int, seconds: float) -> None:
        try:
            self.on_batch(size, seconds)
        except Exception:  # noqa: BLE001 - metrics must never stop the worker
            log.exception("recording a batch of %d failed", size)
