"""Helpers of the service tests: the app under a real uvicorn in a thread, encoders with a known cost,
and a hand-made collection whose payloads can say anything (hostile image paths included)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import uvicorn

from gcl_vectordb.domain import ModelIdentity, Preprocessing
from gcl_vectordb.serve.server import listen
from gcl_vectordb.store import CollectionRecord, PointRecord, open_store, product_payload


@contextlib.contextmanager
def running_app(app) -> Iterator[str]:
    """`app` served by uvicorn in a thread of this process on a free port; yields the base URL.
    Leaving the block stops the server the way SIGTERM does (drain, then the app's shutdown)."""
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"


class SlowEncoder:
    """Another encoder's text embeddings, each call `delay_s` slower; records its batch sizes."""

    def __init__(self, encoder, delay_s: float) -> None:
        self.encoder, self.delay_s = encoder, delay_s
        self.model_ref, self.dim, self.identity = encoder.model_ref, encoder.dim, encoder.identity
        self.batches: list[int] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        time.sleep(self.delay_s)
        return self.encoder.encode_texts(texts)


class HashEncoder:
    """Unit vectors `(n, dim)` drawn from a hash of each text: deterministic, no model."""

    def __init__(self, model_ref: str = "hash-model", dim: int = 8) -> None:
        self.model_ref, self.dim = model_ref, dim
        preprocessing = Preprocessing(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", "shortest", 0, 77)
        self.identity = ModelIdentity(model_ref, hashlib.sha256(b"hash-encoder").hexdigest(), dim, preprocessing)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=self.dim)
                for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def handmade_collection(root: Path, images: dict[str, str | None], dim: int = 8,
                        bm25: bool = True) -> tuple[str, Path]:
    """An embedded store at `root/store` with collection `hand`: one product per `images` entry
    (product id → the image path its payload records), random vectors, images folder `root/images`;
    without `bm25`, a collection as made before keyword search. Returns the store location and the
    images folder."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    points = []
    for i, (product_id, image) in enumerate(images.items()):
        vectors = {name: rng.normal(size=dim).astype(np.float32) for name in ("image", "title", "fused")}
        points.append(PointRecord(product_id, vectors, product_payload(product_id, f"product {i}", image, 1)))
    store = root / "store"
    with open_store(store) as handle:
        handle.create_collection(CollectionRecord("hand", model_ref="hash-model", dim=dim,
                                                  ingest={"images_dir": str(images_dir)},
                                                  identity=HashEncoder(dim=dim).identity,
                                                  **({} if bm25 else {"bm25": None})))
        handle.upsert("hand", points)
    return str(store), images_dir
