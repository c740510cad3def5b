"""The source of `ingest` and `embed`: a dataset's products, images decoded in worker processes, embedded.

    reader thread                      decode worker processes           calling thread
    iter_products (one Partition)  ──► read + preprocess images     ──► image + title towers, fused vector
                                       (JPEG draft decoding)

The reader splits each batch's decoding over the workers as soon as it reads it; the encoder waits only
if the workers fall behind. Stage times: `decode` (worker CPU), `wait` (encoder idle waiting for pixels),
`encode`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gcl_vectordb.data.dataset import Dataset
from gcl_vectordb.data.records import WHOLE, Partition, Product, Reject, RejectLog
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.encoders.fusion import fused_document_vector
from gcl_vectordb.encoders.protocol import Encoder
from gcl_vectordb.ingest.decode import DecodedChunk, decode_in_worker, decode_products, init_worker
from gcl_vectordb.ingest.pipeline import EncodedBatch, ReadBatch, SourceBatch
from gcl_vectordb.store import product_payload


@dataclass(frozen=True)
class ProductRows:
    """Products of one batch (the `Rows` of this source)."""

    products: list[Product]

    @property
    def product_ids(self) -> list[str]:
        return [p.product_id for p in self.products]

    def take(self, positions: Sequence[int]) -> ProductRows:
        return ProductRows([self.products[i] for i in positions])

    def __len__(self) -> int:
        return len(self.products)


class ProductSource:
    """Products of `dataset` (one `partition`), embedded by `encoder` with `field_weights`.

    `pool`: the decode worker processes (None: decode in the reader thread); see `decode_pool`.
    """

    encodes = True

    def __init__(self, dataset: Dataset, encoder: Encoder, field_weights: FieldWeights, *, batch_size: int,
                 workers: int, pool: Executor | None, partition: Partition = WHOLE) -> None:
        self.dataset, self.encoder, self.field_weights = dataset, encoder, field_weights
        self.batch_size, self.workers, self.pool, self.partition = batch_size, max(workers, 1), pool, partition
        self.images_dir = images_root(dataset)
        self.seconds = dict.fromkeys(("decode", "wait", "encode"), 0.0)

    def total(self, corpus: int) -> int:
        # a partition holds about 1/N of the products (ids hash uniformly); the bar is an estimate then
        return -(-self.dataset.count_products(corpus) // self.partition.count)

    def read(self, corpus: int, start: int, rejects: RejectLog, retry: frozenset[str]) -> Iterator[SourceBatch]:
        for batch in self.dataset.product_batches(corpus, batch_size=self.batch_size, rejects=rejects, start=start,
                                                  retry=retry, partition=self.partition):
            yield SourceBatch(ProductRows(batch.products) if batch.products else None, batch.end, batch.complete)

    def start(self, corpus: int, rows: ProductRows) -> list[Future | DecodedChunk]:
        """Start decoding the batch's images, split over the workers."""
        todo = rows.products
        parts = max(1, min(self.workers, len(todo)))
        size = max(-(-len(todo) // parts), 1)
        if self.pool is None:
            return [decode_products(todo[i : i + size], self.encoder.preprocessor) for i in range(0, len(todo), size)]
        return [self.pool.submit(decode_in_worker, todo[i : i + size]) for i in range(0, len(todo), size)]

    def finish(self, batch: ReadBatch) -> EncodedBatch:
        started = time.perf_counter()
        chunks = [part.result() if isinstance(part, Future) else part for part in batch.work]
        ready = time.perf_counter()
        self.seconds["wait"] += ready - started
        self.seconds["decode"] += sum(chunk.seconds for chunk in chunks)
        assert isinstance(batch.rows, ProductRows)
        encoded = encode_batch(self, batch, batch.rows.products, chunks)
        self.seconds["encode"] += time.perf_counter() - ready
        return encoded


@contextlib.contextmanager
def decode_pool(encoder: Encoder, workers: int) -> Iterator[Executor | None]:
    """`workers` decode processes (None for 0), shut down on exit."""
    if workers <= 0:
        yield None
        return
    # spawn: forking a process that runs ORT/torch threads is unsafe; workers import little
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(encoder.preprocessor, os.getpid()))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encode_batch(source: ProductSource, batch: ReadBatch, products: list[Product],
                 chunks: list[DecodedChunk]) -> EncodedBatch:
    """Embed a decoded batch: image tower on the decoded pixels, text tower on the titles, then
    fused = normalize(Σ_f α_f e_f) with α renormalised over each product's present fields. A product
    whose only field weighs 0 has nothing to embed: a reject."""
    encoder = source.encoder
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
    weights = source.field_weights
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
    fused = fused_document_vector({"image": image, "title": title}, present, weights)
    return EncodedBatch(
        source=batch, product_ids=[p.product_id for p in kept],
        vectors={"image": image, "title": title, "fused": fused},
        present={**present, "fused": np.ones(len(kept), dtype=bool)},
        payloads=[_payload(p, source.images_dir) for p in kept], rejects=rejects,
    )


def images_root(dataset: Dataset) -> Path:
    """The dataset's images folder with symlinks resolved: what a collection (or an embeddings header)
    records, and what the payload's image paths are relative to."""
    return Path(os.path.realpath(dataset.images_dir))


def _payload(product: Product, images_root: Path) -> dict[str, Any]:
    # relative to the images folder the collection records, so that a moved dataset stays usable; the
    # reader has checked that the file lies inside it (gcl_vectordb.data.images.contained_file)
    image = str(product.image_path.relative_to(images_root)) if product.image_path is not None else None
    return product_payload(product.product_id, product.title, image, product.corpus, product.extra,
                           image_cell=product.image_cell)
