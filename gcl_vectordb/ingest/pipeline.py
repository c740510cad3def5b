"""The ingest pipeline: read ∥ prepare ∥ finish ∥ write, stages overlapped through bounded queues.

One engine serves the three jobs that move products: `ingest` (a dataset embedded into a collection),
`embed` (a dataset embedded into parquet shards) and `ingest --embeddings` (shards into a collection).
A job is a `Source` (where points come from) and a `Sink` (where they go):

    reader thread ─────────────────► calling thread ──────────► writer thread
    source.read (rows of a corpus)    source.finish               sink.write, rejects, cursor;
    sink.stored (skip stored ids)     (encode, or slice the        checkpoint: sink.flush, then the
    source.start (decode in workers)   embedded rows)              cursor (never the other way round),
                                                                   then sink.saved(the progress)

An id stored — or read and not yet written — for another corpus is a `duplicate-product-id` reject; the
ids in flight are checked with the store's, so the next corpus is read without waiting for this one.
Products an earlier run rejected for a curable reason (`RejectsFile.retrying`) are read again; once their
corpus is read to its end, the rejects file keeps only this run's verdict on them (`RejectsFile.settle`).

| job | source | sink |
|---|---|---|
| ingest | `ProductSource`: products → decode workers → image/title towers → fused | `StoreSink` |
| embed | `ProductSource` (one `Partition` of the products) | `PartsSink`: parquet part files |
| ingest --embeddings | `ShardSource`: parquet row groups → vectors, payloads | `StoreSink` |

The reader starts each batch's work as soon as it reads it and queues it, `PREFETCH` batches ahead: while
the calling thread finishes batch k, batches k+1…k+P are being prepared and the writer writes batch k−1.
Every queue is bounded, so memory stays flat whatever the dataset size. Batches stay in reading order
from end to end, which is what makes the per-corpus cursor (`gcl_vectordb.ingest.state`) valid. A failure
in any stage stops all of them and is raised here; Ctrl-C stops reading, lets the writer commit what is
already finished, checkpoints, and re-raises `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from gcl_vectordb.data.records import Reject, RejectLog
from gcl_vectordb.ingest.state import IngestState, RejectsFile
from gcl_vectordb.progress import NULL_PROGRESS, Progress, ProgressTask
from gcl_vectordb.store.records import IngestProgress

log = logging.getLogger(__name__)
PREFETCH = 2  # batches read and being prepared ahead of the one being finished
_DONE = object()
_POLL_S = 0.1


class Rows(Protocol):
    """A source's rows of one batch: their product ids, and a subset of them by position."""

    @property
    def product_ids(self) -> list[str]: ...

    def take(self, positions: Sequence[int]) -> Rows: ...

    def __len__(self) -> int: ...


class SourceBatch(NamedTuple):
    """Rows a source read: `end` is the corpus cursor once they are in (entries of the corpus, rejected
    ones included); `complete` marks the corpus's last batch, whose `rows` may be None (nothing left)."""

    rows: Rows | None
    end: int
    complete: bool


@dataclass
class ReadBatch:
    """Rows read for one batch. `end`: the corpus cursor once this batch is in. `rows`: those still to
    write (stored ones removed); `present`: how many were already stored; `work`: what the source started
    on them in the reader thread. `complete`: the corpus's last item (it may carry only rejects)."""

    corpus: int
    end: int
    rows: Rows | None
    present: int
    rejects: list[Reject]
    work: Any = None
    complete: bool = False
    flight: list[str] = field(default_factory=list)  # the ids of `rows`, in flight until written
    recovered: int = 0  # products rejected by an earlier run and found stored now


@dataclass
class EncodedBatch:
    """Points ready to write: ids, vectors `{name: (n, dim)}` with presence `{name: (n,)}`, payloads;
    `prepared`: the sink's form of them where the calling thread made it."""

    source: ReadBatch
    product_ids: list[str]
    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    payloads: list[dict[str, Any]]
    rejects: list[Reject]
    prepared: Any = None


class Source(Protocol):
    """Where points come from. `read` and `start` run in the reader thread, `finish` in the calling one.

    `seconds` holds the source's own stage times (e.g. decode, encode), merged into the report.
    `encodes`: `finish` runs a model, which keeps the calling thread busy; the sink then prepares its
    writes in the writer thread (otherwise in the calling thread, next to the writer's engine calls)."""

    seconds: dict[str, float]
    encodes: bool

    def total(self, corpus: int) -> int:
        """Items of the corpus (for the progress bar)."""
        ...

    def read(self, corpus: int, start: int, rejects: RejectLog, retry: frozenset[str]) -> Iterator[SourceBatch]:
        """The corpus's rows in batches after the first `start` entries (the cursor), and those before it
        whose id is in `retry` (rejected by an earlier run); bad rows go to `rejects`. The last batch is
        `complete`."""
        ...

    def start(self, corpus: int, rows: Rows) -> Any:
        """Begin the work on rows that will be written (e.g. submit their decoding); returns a handle."""
        ...

    def finish(self, batch: ReadBatch) -> EncodedBatch:
        """The batch's points (e.g. embedded), with any rejects found on the way."""
        ...


class Sink(Protocol):
    """Where points go. `stored` runs in the reader thread; `prepare` in the calling or the writer thread
    (see `Source.encodes`); `write`, `due` and `flush` in the writer thread.

    `stage`: the name of the writer's stage in the report's seconds ("upsert", "write")."""

    stage: str

    def stored(self, corpus: int, product_ids: list[str]) -> tuple[set[str], dict[str, Any]]:
        """Among `product_ids`: those already written for `corpus`, and {id: its corpus} for those
        written for another corpus (rejected as duplicates)."""
        ...

    def prepare(self, batch: EncodedBatch) -> Any:
        """The batch in the form `write` takes (e.g. the store client's point objects)."""
        ...

    def write(self, batch: EncodedBatch, prepared: Any) -> None: ...

    def due(self) -> bool:
        """Whether the sink wants a checkpoint now (e.g. a part file is full)."""
        ...

    def flush(self) -> None:
        """Make everything written durable; the cursor is saved right after."""
        ...

    def saved(self, progress: IngestProgress) -> None:
        """The cursor was saved: how far the job got (e.g. kept in the collection's record)."""
        ...


@dataclass
class Tally:
    """Counters and stage times; each field is written by one stage only (read after the joins)."""

    written: dict[int, int] = field(default_factory=dict)
    rejected: dict[int, int] = field(default_factory=dict)
    retried: dict[int, int] = field(default_factory=dict)  # earlier rejects read again
    recovered: dict[int, int] = field(default_factory=dict)  # of those, stored (or written) now
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("read", "checkpoint"), 0.0))

    def add(self, counter: dict[int, int], corpus: int, amount: int) -> None:
        counter[corpus] = counter.get(corpus, 0) + amount


@dataclass
class PipelineSetup:
    """One job: its source and sink, the resume state and rejects file, which corpora, how often to
    checkpoint (seconds; 0 = every batch), and the progress bar's label."""

    source: Source
    sink: Sink
    state: IngestState
    rejects: RejectsFile
    corpora: tuple[int, ...]
    checkpoint_s: float
    label: str


def run_pipeline(setup: PipelineSetup, progress: Progress = NULL_PROGRESS) -> Tally:
    """Run the job over the corpora whose cursor is not complete, with a progress bar (items of the corpora)."""
    cursors = {c: setup.state.cursor(c) for c in setup.corpora}
    retrying = any(setup.rejects.retrying(c) for c in setup.corpora)
    pending, done = retrying or not all(c.complete for c in cursors.values()), sum(c.done for c in cursors.values())
    sizes = {c: cursor.done if cursor.complete else setup.source.total(c) for c, cursor in cursors.items()}
    total = sum(sizes.values()) if pending else done
    task = progress.task(setup.label, total=total, unit="points")
    task.update(completed=done)
    try:
        tally = Pipeline(setup, task, sizes).run()
        task.update(completed=total)  # the bar counts rows read, a little more or less than the total
    finally:
        task.close()
    tally.seconds.update(setup.source.seconds)
    return tally


class Pipeline:
    """One run over the corpora whose cursor is not complete (see the module docstring)."""

    def __init__(self, setup: PipelineSetup, task: ProgressTask = NULL_PROGRESS.task(""),
                 sizes: dict[int, int] | None = None) -> None:
        """`sizes`: entries per corpus, for the progress the sink is told at each checkpoint."""
        self.setup = setup
        self.task = task
        self.sizes = sizes or {}
        self.tally = Tally()
        self.tally.seconds[setup.sink.stage] = 0.0
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        # ids read to be written and not written yet, with their corpus: with what the sink holds, what a
        # product of the next corpus is checked against, so the reader need not wait at a corpus's end
        self._in_flight: dict[str, int] = {}
        self._flight_lock = threading.Lock()
        self.to_finish: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self.to_write: queue.Queue = queue.Queue(maxsize=2)
        self._last_checkpoint = time.monotonic()
        self._pending = False  # committed batches the last checkpoint does not cover
        self._prepare_s = 0.0

    # ---- the calling thread: finish
    def run(self) -> Tally:
        reader = threading.Thread(target=self._guarded, args=(self._read,), name="ingest-read", daemon=True)
        writer = threading.Thread(target=self._guarded, args=(self._write,), name="ingest-write", daemon=True)
        reader.start()
        writer.start()
        try:
            while (item := self._get(self.to_finish)) is not _DONE:
                self._put(self.to_write, self._finish(item))
            self._put(self.to_write, _DONE)
            writer.join()
        except BaseException:  # Ctrl-C lands here too, even while waiting for the last writes
            self.stop.set()
            self._finish_writes(writer)
            raise
        finally:
            self.stop.set()
            reader.join()
        if self.failure is not None:
            raise self.failure
        if self._prepare_s:
            self.tally.seconds["prepare"] = self._prepare_s
        return self.tally

    def _finish_writes(self, writer: threading.Thread) -> None:
        """On Ctrl-C or a failure here: let the writer commit what it holds, then checkpoint."""
        while writer.is_alive():
            try:
                self.to_write.put(_DONE, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        writer.join()

    def _finish(self, batch: ReadBatch) -> EncodedBatch:
        if batch.rows is None:  # a corpus's closing item: rejects only
            return EncodedBatch(batch, [], {}, {}, [], list(batch.rejects))
        encoded = self.setup.source.finish(batch)
        if not self.setup.source.encodes and encoded.product_ids:
            started = time.perf_counter()
            encoded.prepared = self.setup.sink.prepare(encoded)
            self._prepare_s += time.perf_counter() - started
        return encoded

    # ---- reader thread
    def _read(self) -> None:
        setup = self.setup
        for corpus in setup.corpora:
            cursor = setup.state.cursor(corpus)
            retry = setup.rejects.retrying(corpus)
            if cursor.complete and not retry:
                continue
            rejected = RejectLog()
            clock = time.perf_counter()
            for read in setup.source.read(corpus, cursor.done, rejected, retry):
                if read.rows is None or not len(read.rows):
                    batch = ReadBatch(corpus, read.end, None, 0, rejected.drain())
                else:
                    batch = self._prepare(corpus, read.end, read.rows, rejected.drain(), retry)
                batch.complete = read.complete
                self.tally.seconds["read"] += time.perf_counter() - clock
                if not self._put(self.to_finish, batch):
                    return
                clock = time.perf_counter()
        self._put(self.to_finish, _DONE)

    def _prepare(self, corpus: int, end: int, rows: Rows, rejects: list[Reject], retry: frozenset[str]) -> ReadBatch:
        """Skip rows the sink holds already (an id held or being written for another corpus is a reject);
        start the rest; `retry`: ids rejected by an earlier run (those stored meanwhile are recovered). In-flight ids are looked up before the sink: the writer removes an id from them
        only after writing it, so an id is always in one of the two."""
        ids = rows.product_ids
        with self._flight_lock:
            flying = {p: c for p in ids if (c := self._in_flight.get(p)) is not None and c != corpus}
        same, elsewhere = self.setup.sink.stored(corpus, ids)
        elsewhere = flying | elsewhere
        for product_id in ids:
            if product_id in elsewhere:
                rejects.append(Reject(f"corpus {corpus}", 0, "duplicate-product-id",
                                      f"already stored for corpus {elsewhere[product_id]}", product_id))
        keep = [i for i, p in enumerate(ids) if p not in same and p not in elsewhere]
        todo = rows.take(keep)
        flight = [ids[i] for i in keep]
        with self._flight_lock:
            self._in_flight.update(dict.fromkeys(flight, corpus))
        return ReadBatch(corpus, end, todo, len(same), rejects, self.setup.source.start(corpus, todo), flight=flight,
                         recovered=len(same & retry) if retry else 0)

    # ---- writer thread
    def _write(self) -> None:
        try:
            while (item := self.to_write.get()) is not _DONE:
                self._commit(item)
        except BaseException:
            with contextlib.suppress(Exception):  # keep what was committed; the first error is raised
                self._checkpoint()
            raise
        if self._pending:  # (the last corpus's end already checkpointed, unless a stop came before it)
            self._checkpoint()
        else:  # nothing new (e.g. a re-run of a finished job): the sink still learns how far the job got
            self.setup.sink.saved(self.setup.state.progress(self.setup.corpora, self.sizes))

    def _commit(self, batch: EncodedBatch) -> None:
        setup, source = self.setup, batch.source
        started = time.perf_counter()
        if batch.product_ids:
            prepared = batch.prepared if batch.prepared is not None else setup.sink.prepare(batch)
            setup.sink.write(batch, prepared)
        with self._flight_lock:  # written (or rejected on the way): the sink answers for them now
            for product_id in source.flight:
                self._in_flight.pop(product_id, None)
        self.tally.seconds[setup.sink.stage] += time.perf_counter() - started
        new = setup.rejects.add(batch.rejects, source.corpus)
        cursor = setup.state.cursor(source.corpus)
        # a retry pass re-reads entries before the cursor: the cursor never moves back
        cursor.done, cursor.complete = max(cursor.done, source.end), cursor.complete or source.complete
        self._pending = True
        self.tally.add(self.tally.written, source.corpus, len(batch.product_ids))
        self.tally.add(self.tally.rejected, source.corpus, new)
        if retry := setup.rejects.retrying(source.corpus):
            recovered = source.recovered + sum(p in retry for p in batch.product_ids)
            self.tally.add(self.tally.recovered, source.corpus, recovered)
        self.task.advance(len(batch.product_ids) + source.present + len(batch.rejects))
        if source.complete and retry:
            self._settle_retries(source.corpus, retry)
        # A corpus's end is checkpointed where redoing work costs a model's time; a load from shards
        # redoes cheaply, and a flush costs ≈ 0.5 s: it checkpoints only at the end and on the interval.
        corpus_end = source.complete and (setup.source.encodes or source.corpus == setup.corpora[-1])
        if corpus_end or setup.sink.due() or time.monotonic() - self._last_checkpoint >= setup.checkpoint_s:
            self._checkpoint()

    def _settle_retries(self, corpus: int, retried: frozenset[str]) -> None:
        """`corpus` is read to its end: checkpoint (the recovered products' points durable, the cursor
        past them), then let the rejects file keep only this run's verdict on the retried products."""
        self._checkpoint()
        self.tally.add(self.tally.retried, corpus, len(retried))
        self.setup.rejects.settle(corpus)

    def _checkpoint(self) -> None:
        """Make the written points durable, then move the cursor (never the other way round), then tell
        the sink how far the job got."""
        started = time.perf_counter()
        setup = self.setup
        setup.sink.flush()
        setup.rejects.sync()
        setup.state.save()
        setup.sink.saved(setup.state.progress(setup.corpora, self.sizes))
        self._last_checkpoint, self._pending = time.monotonic(), False
        self.tally.seconds["checkpoint"] += time.perf_counter() - started

    # ---- plumbing
    def _guarded(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except BaseException as exc:  # handed to the calling thread, which raises it
            if self.failure is None:
                self.failure = exc
            self.stop.set()

    def _put(self, target: queue.Queue, item: Any) -> bool:
        """Put, waiting for room unless the pipeline stops; False if it stopped."""
        while not self.stop.is_set() or target is self.to_write:
            try:
                target.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                if self.failure is not None:
                    return False
        return False

    def _get(self, source: queue.Queue) -> Any:
        while True:
            if self.failure is not None:
                raise self.failure
            try:
                return source.get(timeout=_POLL_S)
            except queue.Empty:
                continue
