"""The micro-batcher against its reference: the same results as one call per item, in batches no larger
than asked, a queue that refuses at once when full, and a close that finishes what was queued."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, wait

import pytest

from gcl_vectordb.errors import ConfigError
from gcl_vectordb.serve import BatchLimits, MicroBatcher, QueueFull


class Recorder:
    """`process` squares numbers, remembers each batch, and can be held back by an event."""

    def __init__(self, gate: threading.Event | None = None, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate, self.fail_on = gate, fail_on
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"cannot square {self.fail_on}")
        return [x * x for x in items]


def test_batches_give_the_per_item_results_in_order() -> None:
    gate = threading.Event()
    process = Recorder(gate)
    sizes = []
    batcher = MicroBatcher(process, BatchLimits(max_batch=4, max_wait_s=0.0, queue_size=100),
                           on_batch=lambda size, seconds: sizes.append(size))
    batcher.start()
    futures = [batcher.submit(x) for x in range(23)]  # the worker is held in its first batch meanwhile
    gate.set()
    assert [f.result(10) for f in futures] == [x * x for x in range(23)]
    assert batcher.close(10)
    assert [x for batch in process.batches for x in batch] == list(range(23))  # FIFO
    assert max(len(b) for b in process.batches) == 4 and sizes == [len(b) for b in process.batches]
    assert len(process.batches) <= 1 + 22 // 4 + 1  # queued items were really batched


def test_a_lone_item_waits_at_most_max_wait_for_company() -> None:
    process = Recorder()
    batcher = MicroBatcher(process, BatchLimits(max_batch=8, max_wait_s=0.3, queue_size=10))
    batcher.start()
    started = time.perf_counter()
    first = batcher.submit(1)
    time.sleep(0.05)
    second = batcher.submit(2)
    assert (first.result(5), second.result(5)) == (1, 4)
    assert process.batches == [[1, 2]]  # the second came within the wait and joined the first
    assert 0.25 < time.perf_counter() - started < 3
    batcher.close(5)


def test_a_full_queue_refuses_at_once_and_close_drains_everything_queued() -> None:
    gate = threading.Event()
    process = Recorder(gate)
    batcher = MicroBatcher(process, BatchLimits(max_batch=2, max_wait_s=0.0, queue_size=3))
    batcher.start()
    running = batcher.submit(0)
    assert process.entered.wait(5)  # the worker has taken item 0 and waits at the gate
    queued = [batcher.submit(x) for x in (1, 2, 3)]
    started = time.perf_counter()
    with pytest.raises(QueueFull, match="3 requests are already waiting"):
        batcher.submit(4)
    assert time.perf_counter() - started < 0.1  # refused, not blocked
    assert batcher.depth() == 4

    closer = threading.Thread(target=batcher.close, args=(10,))
    closer.start()
    time.sleep(0.05)
    with pytest.raises(QueueFull, match="shutting down"):
        batcher.submit(5)
    gate.set()
    closer.join(10)
    assert [f.result(0) for f in (running, *queued)] == [0, 1, 4, 9]  # accepted before close: all answered
    assert not batcher.running and batcher.depth() == 0


def test_one_bad_item_fails_only_its_own_caller_and_cancelled_items_are_skipped() -> None:
    gate = threading.Event()
    process = Recorder(gate, fail_on=3)
    batcher = MicroBatcher(process, BatchLimits(max_batch=8, max_wait_s=0.0, queue_size=20))
    batcher.start()
    futures = [batcher.submit(x) for x in range(6)]
    assert futures[5].cancel()  # a client that went away before its turn
    gate.set()
    wait(futures[:5], timeout=10)
    assert [f.result() for f in futures[:5] if f is not futures[3]] == [0, 1, 4, 16]
    with pytest.raises(ValueError, match="cannot square 3"):
        futures[3].result()
    with pytest.raises(CancelledError):
        futures[5].result()
    assert all(5 not in batch for batch in process.batches)
    batcher.close(5)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="max batch and queue size"):
        BatchLimits(max_batch=0)
    with pytest.raises(ConfigError, match="batch wait"):
        BatchLimits(max_wait_s=2)
