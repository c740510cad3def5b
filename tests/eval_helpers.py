"""A small ingest for evaluation tests and benchmarks/evaluate.py (until `gcl_vectordb.ingest` is merged).

Every product of both corpora: image and title embedded by `model_ref`, the fused vector by
`fused_document_vector` with the default field weights, written with `upsert_arrays`; the collection
records the model (its identity), the dataset folder and, at the end, a complete ingest, as the real
ingest does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from gcl_vectordb.data import ImageRejected, decode_image, open_dataset
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS
from gcl_vectordb.encoders import fused_document_vector, load_encoder
from gcl_vectordb.store import CollectionRecord, IngestProgress, open_store, product_payload
from gcl_vectordb.store.storage import StorageOptions


def ingest_dataset(
    root: Path, store_location: Path | str, collection: str, model_ref: str, *, batch_size: int = 128,
    store_options: dict[str, Any] | None = None, optimize: bool = False, storage: StorageOptions | None = None,
) -> dict[str, float]:
    """Load `root` into `collection` (stored as `storage`, store opened with `store_options`; HNSW built if
    `optimize`); returns seconds spent {"encode": ..., "upsert": ..., "optimize": ...}."""
    import time

    dataset = open_dataset(root)
    encoder = load_encoder(model_ref, batch_size=batch_size)
    seconds = {"encode": 0.0, "upsert": 0.0, "optimize": 0.0}
    with open_store(store_location, **(store_options or {})) as store:
        record = store.create_collection(CollectionRecord(
            collection, model_ref=encoder.model_ref, dim=encoder.dim, field_weights=DEFAULT_FIELD_WEIGHTS,
            dataset_root=str(Path(root).resolve()), storage=storage or StorageOptions(), identity=encoder.identity,
            progress=IngestProgress(False, {c: (0, dataset.count_products(c)) for c in dataset.corpora}),
        ))
        for corpus in dataset.corpora:
            for batch in dataset.iter_products(corpus, batch_size=batch_size):
                start = time.perf_counter()
                images, has_image = [], np.zeros(len(batch), dtype=bool)
                for i, product in enumerate(batch):
                    try:
                        images.append(decode_image(product))
                        has_image[i] = True
                    except ImageRejected:
                        pass
                image = np.zeros((len(batch), encoder.dim), dtype=np.float32)
                image[has_image] = encoder.encode_images(images)
                title = encoder.encode_texts([p.title for p in batch])
                present = {"image": has_image, "title": np.ones(len(batch), dtype=bool)}
                fused = fused_document_vector({"image": image, "title": title}, present, DEFAULT_FIELD_WEIGHTS)
                middle = time.perf_counter()
                payloads = [product_payload(p.product_id, p.title, str(p.image_path) if p.image_path else None,
                                            corpus) for p in batch]
                store.upsert_arrays(collection, [p.product_id for p in batch],
                                    {"image": image, "title": title, "fused": fused},
                                    {**present, "fused": np.ones(len(batch), dtype=bool)}, payloads)
                seconds["encode"] += middle - start
                seconds["upsert"] += time.perf_counter() - middle
        done = {c: (dataset.count_products(c), dataset.count_products(c)) for c in dataset.corpora}
        store.update_record(dataclasses.replace(record, progress=IngestProgress(True, done)))
        if optimize:
            start = time.perf_counter()
            store.optimize(collection)
            seconds["optimize"] = time.perf_counter() - start
    return seconds
