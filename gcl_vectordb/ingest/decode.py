"""The decode stage of ingest: encoded image → model pixels, in worker processes, rejects as values.

Workers receive products (a few hundred bytes each; parquet products carry their image bytes) and send
back float32 pixels `(k, 3, S, S)` for the k products whose image decoded. A product without any image
reference is title-only (not a reject); an unreadable file is `missing-image`, an undecodable one
`corrupt-image`, one above the pixel limit (`gcl_vectordb.imaging`) `image-too-large` — returned, never raised, so one bad file never stops a batch.

This module is what each worker process imports: it stays free of torch, onnxruntime and qdrant.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gcl_vectordb.data.records import Product
from gcl_vectordb.encoders.preprocess import ImagePreprocessor
from gcl_vectordb.imaging import ImageTooLarge

_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
_preprocessor: ImagePreprocessor | None = None  # set once per worker process by `init_worker`


@dataclass(frozen=True)
class ImageFailure:
    """A product whose image cannot be used: its index in the chunk, a REJECT_REASONS code, details."""

    index: int
    reason: str  # "missing-image" | "corrupt-image" | "image-too-large"
    detail: str


@dataclass(frozen=True)
class DecodedChunk:
    """The decode result of `n` products: pixels of those with a usable image, in order.

    `has_image` `(n,)` bool; `pixels` `(has_image.sum(), 3, S, S)` float32; `failures` the rejected
    products (has_image False there too); `seconds` the CPU time the worker spent.
    """

    has_image: np.ndarray
    pixels: np.ndarray
    failures: tuple[ImageFailure, ...]
    seconds: float


def decode_products(products: Sequence[Product], preprocessor: ImagePreprocessor) -> DecodedChunk:
    """Read and preprocess the images of `products` (JPEG draft decoding, see `ImagePreprocessor.from_bytes`)."""
    started = time.thread_time()  # this thread only: decoding may run in a thread of the ingest process
    size = preprocessor.size
    pixels = np.empty((len(products), 3, size, size), dtype=np.float32)
    has_image = np.zeros(len(products), dtype=bool)
    failures = []
    for i, product in enumerate(products):
        try:
            data = product.read_image_bytes()
        except OSError as exc:
            failures.append(ImageFailure(i, "missing-image", f"{product.image_path}: {exc.strerror or exc}"))
            continue
        if data is None:  # no image reference at all: the product is embedded by its title alone
            continue
        try:
            pixels[i] = preprocessor.from_bytes(data)
        except ImageTooLarge as exc:
            where = product.image_path or f"embedded image of {product.product_id}"
            failures.append(ImageFailure(i, "image-too-large", f"{where}: {exc.detail}"))
            continue
        except Exception as exc:  # any decoder failure (PIL raises many types) rejects this image only
            where = product.image_path or f"embedded image of {product.product_id}"
            # the same words on every run (no object addresses), so that a resumed run matches the file
            reason = _OBJECT_REPR.sub("data", getattr(exc, "message", None) or str(exc))
            failures.append(ImageFailure(i, "corrupt-image", f"{where}: {reason}"[:500]))
            continue
        has_image[i] = True
    return DecodedChunk(has_image, pixels[has_image], tuple(failures), time.thread_time() - started)


def init_worker(preprocessor: ImagePreprocessor, parent: int) -> None:
    """Worker start: keep the preprocessor, ignore Ctrl-C (the parent stops us), die with `parent` (a pid)."""
    global _preprocessor
    _preprocessor = preprocessor
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    # A parent killed by SIGKILL never closes the task queue: without this, workers would wait forever.
    # The pid comes from the parent itself: it may have died before this worker finished starting.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def decode_in_worker(products: Sequence[Product]) -> DecodedChunk:
    """`decode_products` with the worker's preprocessor (the task a worker process runs)."""
    assert _preprocessor is not None, "init_worker was not run in this process"
    return decode_products(products, _preprocessor)
