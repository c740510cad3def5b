"""The training run's evaluation hook: the protocol's metrics of held-out queries, exact search in memory.

Documents are embedded as ingest stores them — the model's own preprocessing and tokenizer, and the
fused vector `fused_document_vector` with the run's field weights — and each query retrieves its top k
over the evaluation corpus (`EvalSet.products`) with the project's exact top-k (`exact_run`); the run is
judged with `judge_run` and scored with `compute_metrics`, as `gcl-vdb evaluate` scores the store's run.

`TrainingModelEncoder` embeds with the model being trained, without exporting it: the torch backend
(`TorchEncoder`: the `Encoder` protocol's batching and normalisation, texts cut after their end-of-text
token), the run's autocast, and the model in eval mode only while it embeds.

A product whose image cannot be loaded is represented by its title alone (reported to `rejects`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader

from gcl_vectordb.data import RejectLog
from gcl_vectordb.domain import FieldWeights, ModelIdentity
from gcl_vectordb.encoders import Encoder, fused_document_vector
from gcl_vectordb.encoders.models import LoadedClip
from gcl_vectordb.encoders.protocol import BatchedEncoder
from gcl_vectordb.encoders.torch_encoder import TorchEncoder
from gcl_vectordb.evaluation import MetricTable, compute_metrics, judge_run
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.topk import exact_run
from trainer.data import ProductImages, collate_images
from trainer.pairs import EvalSet

log = logging.getLogger(__name__)


class TrainingModelEncoder(TorchEncoder):
    """The model being trained behind the `Encoder` protocol, under `autocast_dtype` (None: fp32); the model
    is in eval mode while it embeds and back in its mode after."""

    def __init__(self, loaded: LoadedClip, *, device: torch.device, batch_size: int = 256,
                 autocast_dtype: torch.dtype | None = None) -> None:
        training = loaded.model.training
        super().__init__(loaded, device=str(device), batch_size=batch_size)
        self.model.train(training)  # TorchEncoder puts the model in eval mode; training goes on
        self._autocast_dtype = autocast_dtype

    @property
    def identity(self) -> ModelIdentity:
        """Of the weights as they are now: they change while training, so it is not cached."""
        return BatchedEncoder.identity.func(self)

    def _run(self, fn, array: np.ndarray) -> np.ndarray:
        training = self.model.training
        self.model.eval()
        try:
            return super()._run(fn, array)
        finally:
            self.model.train(training)


def embed_products(
    encoder: Encoder,
    eval_set: EvalSet,
    field_weights: FieldWeights,
    *,
    batch_size: int = 256,
    workers: int = 0,
    rejects: RejectLog | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "evaluating",
) -> np.ndarray:
    """Fused document vectors (n_products, dim) float32 of the evaluation corpus; images are loaded
    `batch_size` at a time by `workers` DataLoader processes."""
    products = eval_set.products
    loader = DataLoader(ProductImages(products, encoder.preprocessor), batch_size=batch_size,
                        num_workers=workers, collate_fn=collate_images)
    titles = encoder.encode_texts([product.title or "" for product in products])
    images = np.zeros_like(titles)
    has_image = np.zeros(len(products), dtype=bool)
    task = progress.task(description, total=len(products), unit="products")
    start = 0
    for pixels, present, problems in loader:
        rows = slice(start, start + len(pixels))
        if present.any():
            images[rows][present] = encoder.encode_pixels(pixels[present])
        has_image[rows] = present
        for product, problem in zip(products[rows], problems, strict=True):
            if problem is not None and rejects is not None:
                reason, _, detail = problem.partition(": ")
                rejects.add("evaluation corpus", 0, reason, detail, product.product_id)
        start += len(pixels)
        task.advance(len(pixels))
    task.close()
    fields = {"image": images, "title": titles}
    present = {"image": has_image, "title": np.array([p.title is not None for p in products], dtype=bool)}
    return fused_document_vector(fields, present, field_weights)


def evaluate_retrieval(
    encoder: Encoder,
    eval_set: EvalSet,
    field_weights: FieldWeights,
    *,
    k: int = 1000,
    batch_size: int = 256,
    workers: int = 0,
    rejects: RejectLog | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "evaluating",
) -> MetricTable:
    """Every protocol metric of `eval_set` for the model behind `encoder`, retrieving to depth `k`."""
    documents = embed_products(encoder, eval_set, field_weights, batch_size=batch_size, workers=workers,
                               rejects=rejects, progress=progress, description=description)
    queries = encoder.encode_texts(list(eval_set.queries))
    ids = [product.product_id for product in eval_set.products]
    run = exact_run(eval_set.queries, queries, ids, documents, k)
    table = compute_metrics(judge_run(run, eval_set.qrels, queries=eval_set.queries, depth=k))
    log.info("evaluation on %d queries, %d products: %s", len(eval_set.queries), len(ids), table.headline())
    return table
