"""The training run's evaluation hook: the protocol's metrics of held-out queries, exact search in memory.

Documents are embedded as ingest stores them — the model's own preprocessing and tokenizer, and the
fused vector `fused_document_vector` with the run's field weights — and each query retrieves its top k
by exact cosine similarity over the evaluation corpus (`EvalSet.products`). The run is judged with
`judge_run` (trec_eval's tie order) and scored with `compute_metrics`. `ModelEmbedder` is the torch
encoder's arithmetic with the text padding trimmed (`encode_text_trimmed`) and texts batched by length,
which makes embedding titles several times faster; a test checks it against `load_encoder`.

A product whose image cannot be loaded is represented by its title alone (reported to `rejects`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from gcl_vectordb.data import RejectLog
from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.encoders import ClipTokenizer, ImagePreprocessor, fused_document_vector, l2_normalize
from gcl_vectordb.evaluation import MetricTable, compute_metrics, judge_run
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from trainer.data import ProductImages, collate_images
from trainer.model import encode_text_trimmed
from trainer.pairs import EvalSet

log = logging.getLogger(__name__)
EVAL_KS: tuple[int, ...] = (1, 3, 5, 10, 20, 100, 1000)


class ModelEmbedder:
    """Texts and preprocessed pixels → (n, dim) float32 unit rows with an open_clip model, in inference mode
    (bf16 autocast when `autocast_dtype` is given). Puts the model in eval mode while it runs."""

    def __init__(self, model: nn.Module, tokenizer: ClipTokenizer, preprocessor: ImagePreprocessor, *, dim: int,
                 device: torch.device, batch_size: int = 256, autocast_dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.dim = dim
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.device = device
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype

    def _run(self, fn, inputs: np.ndarray) -> np.ndarray:
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else nullcontext())
        self.model.eval()
        with torch.inference_mode(), autocast:
            return fn(torch.from_numpy(inputs).to(self.device)).float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim); texts of similar token length share a batch, so less padding is computed."""
        tokens = self.tokenizer(list(texts))
        order = np.argsort(tokens.argmax(axis=1), kind="stable")
        out = np.zeros((len(order), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run(lambda t: encode_text_trimmed(self.model, t), tokens[rows])
        return l2_normalize(out)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 3, S, S) float32 → (n, dim)."""
        out = np.zeros((len(pixels), self.dim), dtype=np.float32)
        for start in range(0, len(pixels), self.batch_size):
            batch = pixels[start : start + self.batch_size]
            out[start : start + len(batch)] = self._run(lambda x: self.model.encode_image(x, normalize=True), batch)
        return l2_normalize(out)


def embed_products(
    encoder: ModelEmbedder,
    eval_set: EvalSet,
    field_weights: FieldWeights,
    *,
    workers: int = 0,
    rejects: RejectLog | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "evaluating",
) -> np.ndarray:
    """Fused document vectors (n_products, dim) float32 of the evaluation corpus."""
    products = eval_set.products
    loader = DataLoader(ProductImages(products, encoder.preprocessor), batch_size=encoder.batch_size,
                        num_workers=workers, collate_fn=collate_images)
    titles = encoder.encode_texts([product.title for product in products])
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
    present = {"image": has_image, "title": np.ones(len(products), dtype=bool)}
    return fused_document_vector(fields, present, field_weights)


def exact_top_k(queries: np.ndarray, documents: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best documents per query by cosine (rows are unit norm): indices and scores (Q, min(k, N)),
    in no particular order within a row (the judge ranks them)."""
    scores = torch.from_numpy(queries) @ torch.from_numpy(documents).T  # (Q, N)
    top = torch.topk(scores, k=min(k, documents.shape[0]), dim=1, sorted=False)
    return top.indices.numpy(), top.values.numpy()


def evaluate_retrieval(
    encoder: ModelEmbedder,
    eval_set: EvalSet,
    field_weights: FieldWeights,
    *,
    k: int = 1000,
    workers: int = 0,
    rejects: RejectLog | None = None,
    progress: Progress = NULL_PROGRESS,
    description: str = "evaluating",
) -> MetricTable:
    """Every protocol metric of `eval_set` for the model behind `encoder` (leaves it in eval mode)."""
    documents = embed_products(encoder, eval_set, field_weights, workers=workers, rejects=rejects,
                               progress=progress, description=description)
    queries = encoder.encode_texts(list(eval_set.queries))
    indices, scores = exact_top_k(queries, documents, k)
    ids = [product.product_id for product in eval_set.products]
    run = {
        query: [(ids[j], float(s)) for j, s in zip(row_indices.tolist(), row_scores.tolist(), strict=True)]
        for query, row_indices, row_scores in zip(eval_set.queries, indices, scores, strict=True)
    }
    judged = judge_run(run, eval_set.qrels, queries=list(eval_set.queries), depth=k)
    table = compute_metrics(judged, ks=EVAL_KS)
    log.info("evaluation on %d queries, %d products: %s", len(eval_set.queries), len(ids), table.headline())
    return table
