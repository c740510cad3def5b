"""The ingest pipeline: read ∥ decode ∥ encode ∥ upsert, four stages overlapped through bounded queues.

    reader thread ──► decode worker processes ──► encoder (calling thread) ──► upsert thread
    iter_products,     read + preprocess images     image + title towers,        upsert_arrays, rejects,
    skip stored ids    (JPEG draft decoding)        fused vector                 checkpoint (flush, cursor)

The reader submits each batch's decoding as soon as it reads it (split over the workers) and queues the
futures, `PREFETCH` batches ahead: while the encoder embeds batch k, the workers decode batches k+1…k+P
and the upsert thread writes batch k−1. Every queue is bounded, so memory stays flat whatever the
dataset size (about (PREFETCH + 3) batches of pixels). Batches stay in reading order from end to end,
which is what makes the per-corpus cursor valid. A failure in any stage stops all of them and is raised
here; Ctrl-C stops reading, lets the upsert thread commit what is already encoded, checkpoints, and
re-raises `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gcl_vectordb.data.dataset import Dataset
from gcl_vectordb.data.records import Product, Reject, RejectLog
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.encoders.fusion import fused_document_vector
from gcl_vectordb.encoders.protocol import Encoder
from gcl_vectordb.ingest.decode import DecodedChunk, decode_in_worker, decode_products
from gcl_vectordb.ingest.state import IngestState, RejectsFile
from gcl_vectordb.progress import ProgressTask
from gcl_vectordb.store import VectorStore, product_payload

log = logging.getLogger(__name__)
PREFETCH = 2  # batches read and decoding ahead of the one being encoded
_DONE = object()
_POLL_S = 0.1


@dataclass
class ReadBatch:
    """Products read for one batch. `end`: the corpus cursor once this batch is in. `complete`: the
    corpus's last item (it may carry only the rejects that follow the last product)."""

    corpus: int
    end: int
    products: list[Product]
    present: int
    rejects: list[Reject]
    decoding: list[Future | DecodedChunk] = field(default_factory=list)
    complete: bool = False


@dataclass
class EncodedBatch:
    """Points ready to upsert: ids, vectors `{name: (n, dim)}` with presence `{name: (n,)}`, payloads."""

    source: ReadBatch
    product_ids: list[str]
    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    payloads: list[dict[str, Any]]
    rejects: list[Reject]


@dataclass
class Tally:
    """Counters and stage times; each field is written by one stage only (read after the joins)."""

    written: dict[int, int] = field(default_factory=dict)
    rejected: dict[int, int] = field(default_factory=dict)
    retried: dict[int, int] = field(default_factory=dict)  # earlier rejects read again
    recovered: dict[int, int] = field(default_factory=dict)  # of those, stored now
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("read", "decode", "wait", "encode", "upsert", "checkpoint"), 0.0))

    def add(self, counter: dict[int, int], corpus: int, amount: int) -> None:
        counter[corpus] = counter.get(corpus, 0) + amount


@dataclass
class PipelineSetup:
    """Everything the pipeline works with (built by `gcl_vectordb.ingest.run`)."""

    dataset: Dataset
    store: VectorStore
    collection: str
    encoder: Encoder
    field_weights: FieldWeights
    state: IngestState
    rejects: RejectsFile
    corpora: tuple[int, ...]
    batch_size: int
    workers: int
    checkpoint_s: float
    images_dir: Path  # resolved (symlinks too): payload image paths are relative to it
    task: ProgressTask
    sizes: dict[int, int | None] = field(default_factory=dict)  # entries per corpus, for the progress


class Pipeline:
    """One run of the pipeline over the corpora whose cursor is not complete (see the module docstring)."""

    def __init__(self, setup: PipelineSetup, pool: Executor | None) -> None:
        self.setup = setup
        self.pool = pool
        self.tally = Tally()
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.store_lock = threading.Lock()  # the store is used by the reader and the upsert thread
        self.committed = {c: threading.Event() for c in setup.corpora}
        self.to_encode: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self.to_upsert: queue.Queue = queue.Queue(maxsize=2)
        self._last_checkpoint = time.monotonic()

    # ---- the calling thread: encode
    def run(self) -> Tally:
        reader = threading.Thread(target=self._guarded, args=(self._read,), name="ingest-read", daemon=True)
        writer = threading.Thread(target=self._guarded, args=(self._write,), name="ingest-upsert", daemon=True)
        reader.start()
        writer.start()
        try:
            while (item := self._get(self.to_encode)) is not _DONE:
                self._put(self.to_upsert, self._encode(item))
            self._put(self.to_upsert, _DONE)
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
        return self.tally

    def _finish_writes(self, writer: threading.Thread) -> None:
        """On Ctrl-C or a failure here: let the upsert thread commit what it holds, then checkpoint."""
        while writer.is_alive():
            try:
                self.to_upsert.put(_DONE, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        writer.join()

    def _encode(self, batch: ReadBatch) -> EncodedBatch:
        started = time.perf_counter()
        chunks = [part.result() if isinstance(part, Future) else part for part in batch.decoding]
        ready = time.perf_counter()
        self.tally.seconds["wait"] += ready - started
        self.tally.seconds["decode"] += sum(chunk.seconds for chunk in chunks)
        encoded = encode_batch(self.setup, batch, chunks)
        self.tally.seconds["encode"] += time.perf_counter() - ready
        return encoded

    # ---- reader thread
    def _read(self) -> None:
        setup = self.setup
        for corpus in setup.corpora:
            cursor = setup.state.cursor(corpus)
            retry = setup.rejects.retrying(corpus)
            if cursor.complete and not retry:
                self.committed[corpus].set()
                continue
            rejected = RejectLog()
            clock = time.perf_counter()
            for read in setup.dataset.product_batches(corpus, batch_size=setup.batch_size, rejects=rejected,
                                                      start=cursor.done, retry=retry):
                batch = self._prepare(corpus, read.end, read.products, rejected.drain())
                batch.complete = read.complete
                self.tally.seconds["read"] += time.perf_counter() - clock
                if not self._put(self.to_encode, batch):
                    return
                clock = time.perf_counter()
            # Products of the next corpus are checked against the store for ids of this one: wait until
            # this corpus is all written (one batch of lost overlap per corpus).
            while not self.committed[corpus].wait(_POLL_S):
                if self.stop.is_set():
                    return
        self._put(self.to_encode, _DONE)

    def _prepare(self, corpus: int, end: int, products: list[Product], rejects: list[Reject]) -> ReadBatch:
        """Skip products the store holds already; start decoding the rest, split over the workers."""
        with self.store_lock:
            stored = self.setup.store.retrieve(self.setup.collection, [p.product_id for p in products])
        elsewhere = {r.product_id: r.payload.get("corpus") for r in stored if r.payload.get("corpus") != corpus}
        present = len(stored) - len(elsewhere)
        stored_ids = {r.product_id for r in stored}
        for product in products:
            if product.product_id in elsewhere:
                rejects.append(Reject(f"corpus {corpus}", 0, "duplicate-product-id",
                                      f"already stored for corpus {elsewhere[product.product_id]}",
                                      product.product_id))
        todo = [p for p in products if p.product_id not in stored_ids]
        batch = ReadBatch(corpus, end, todo, present, rejects)
        parts = max(1, min(self.setup.workers, len(todo)))
        size = -(-len(todo) // parts) if todo else 0
        for start in range(0, len(todo), max(size, 1)):
            chunk = todo[start : start + size]
            if self.pool is None:
                batch.decoding.append(decode_products(chunk, self.setup.encoder.preprocessor))
            else:
                batch.decoding.append(self.pool.submit(decode_in_worker, chunk))
        return batch

    # ---- upsert thread
    def _write(self) -> None:
        try:
            while (item := self.to_upsert.get()) is not _DONE:
                self._commit(item)
        except BaseException:
            with contextlib.suppress(Exception):  # keep what was committed; the first error is raised
                self._checkpoint()
            raise
        self._checkpoint()

    def _commit(self, batch: EncodedBatch) -> None:
        setup, source = self.setup, batch.source
        started = time.perf_counter()
        if batch.product_ids:
            with self.store_lock:
                setup.store.upsert_arrays(setup.collection, batch.product_ids, batch.vectors, batch.present,
                                          batch.payloads)
        self.tally.seconds["upsert"] += time.perf_counter() - started
        new = setup.rejects.add(batch.rejects, source.corpus)
        cursor = setup.state.cursor(source.corpus)
        # a retry pass re-reads entries before the cursor: the cursor never moves back
        cursor.done, cursor.complete = max(cursor.done, source.end), cursor.complete or source.complete
        self.tally.add(self.tally.written, source.corpus, len(batch.product_ids))
        self.tally.add(self.tally.rejected, source.corpus, new)
        setup.task.advance(len(batch.product_ids) + source.present + len(batch.rejects))
        if source.complete:
            self._settle_retries(source.corpus)
        if source.complete or time.monotonic() - self._last_checkpoint >= setup.checkpoint_s:
            self._checkpoint()
        if source.complete:
            self.committed[source.corpus].set()

    def _settle_retries(self, corpus: int) -> None:
        """The corpus is read to its end: retried rejects that are stored now are recovered; the rejects
        file keeps only this run's verdict on the retried products (flushed points first)."""
        retried = self.setup.rejects.retrying(corpus)
        if not retried:
            return
        with self.store_lock:
            self.setup.store.flush(self.setup.collection)
            stored = self.setup.store.existing_ids(self.setup.collection, sorted(retried))
        self.tally.add(self.tally.retried, corpus, len(retried))
        self.tally.add(self.tally.recovered, corpus, len(stored))
        self.setup.rejects.settle(corpus)

    def _checkpoint(self) -> None:
        """Make the written points durable, then move the cursor (never the other way round), then tell
        the collection's record how far the ingest got."""
        started = time.perf_counter()
        setup = self.setup
        with self.store_lock:
            setup.store.flush(setup.collection)
        setup.rejects.sync()
        setup.state.save()
        progress = setup.state.progress(setup.corpora, setup.sizes)
        with self.store_lock:
            record = setup.store.get_record(setup.collection)
            if record.progress != progress:
                setup.store.update_record(dataclasses.replace(record, progress=progress))
        self._last_checkpoint = time.monotonic()
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
        while not self.stop.is_set() or target is self.to_upsert:
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


def encode_batch(setup: PipelineSetup, batch: ReadBatch, chunks: list[DecodedChunk]) -> EncodedBatch:
    """Embed a decoded batch: image tower on the decoded pixels, text tower on the titles, then
    fused = normalize(Σ_f α_f e_f) with α renormalised over each product's present fields."""
    encoder, products = setup.encoder, batch.products
    rejects = list(batch.rejects)
    has_image = np.concatenate([c.has_image for c in chunks]) if chunks else np.zeros(0, dtype=bool)
    has_title = np.array([p.title is not None for p in products], dtype=bool)
    failed = np.zeros(len(products), dtype=bool)
    offset = 0
    for chunk in chunks:
        for failure in chunk.failures:
            failed[offset + failure.index] = True
            product = products[offset + failure.index]
            rejects.append(Reject(f"images of corpus {batch.corpus}", 0, failure.reason, failure.detail,
                                  product.product_id))
        offset += len(chunk.has_image)
    weights = setup.field_weights
    usable = (has_image & (weights.image > 0)) | (has_title & (weights.title > 0))
    for i in np.flatnonzero(~usable & ~failed):  # its only field weighs 0: nothing to embed
        reason, detail = (("missing-image", "no image, and the title's field weight is 0") if not has_image[i]
                          else ("empty-title", "no title, and the image's field weight is 0"))
        rejects.append(Reject(f"images of corpus {batch.corpus}", 0, reason, detail, products[i].product_id))
        failed[i] = True
    keep = np.flatnonzero(~failed)
    kept = [products[i] for i in keep]
    dim = encoder.dim
    image = np.zeros((len(kept), dim), dtype=np.float32)
    image_rows = has_image[keep]
    if chunks and image_rows.any():
        image[image_rows] = encoder.encode_pixels(np.concatenate([c.pixels for c in chunks])[~failed[has_image]])
    title = np.zeros((len(kept), dim), dtype=np.float32)
    title_rows = has_title[keep]
    if title_rows.any():
        title[title_rows] = encoder.encode_texts([p.title for p in kept if p.title is not None])
    present = {"image": image_rows, "title": title_rows}
    fused = fused_document_vector({"image": image, "title": title}, present, setup.field_weights)
    return EncodedBatch(
        source=batch, product_ids=[p.product_id for p in kept],
        vectors={"image": image, "title": title, "fused": fused},
        present={**present, "fused": np.ones(len(kept), dtype=bool)},
        payloads=[_payload(p, setup.images_dir) for p in kept], rejects=rejects,
    )


def _payload(product: Product, images_root: Path) -> dict[str, Any]:
    # relative to the images folder the collection records, so that a moved dataset stays usable; the
    # reader has checked that the file lies inside it (gcl_vectordb.data.images.contained_file)
    image = str(product.image_path.relative_to(images_root)) if product.image_path is not None else None
    return product_payload(product.product_id, product.title, image, product.corpus, product.extra,
                           image_cell=product.image_cell)
