"""The vectors of benchmarks/scale.py: clustered 512-d embeddings, written as `gcl-vdb embed` writes shards.

`ClusteredEmbeddings` draws products (image, title, fused) and text-like queries from a mixture of
Gaussian components: Zipf-weighted (a few large categories, a long tail), centres leaning on one mean
direction (as CLIP embeddings do), noise with a power-law spectrum in a random rotation (an intrinsic
dimension of ≈ 30), titles offset from images along one direction (CLIP's modality gap); or components
around real model outputs (`centres_from` an embeddings folder). `write_shards` writes N of them through
the library's own shard writer (`PartsSink`, shard record, manifest with sha256).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from gcl_vectordb.data.records import WHOLE
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS, ModelIdentity, Preprocessing
from gcl_vectordb.ingest.pipeline import EncodedBatch, ReadBatch
from gcl_vectordb.ingest.shard_format import (
    ShardHeader,
    ShardRecord,
    assemble_manifest,
    read_manifest,
    shard_dir_name,
    write_manifest,
)
from gcl_vectordb.ingest.shard_parts import PartsSink, embedded_batch, list_parts
from gcl_vectordb.store import product_payload

DIM = 512


@dataclass(frozen=True)
class ClusterSpec:
    """The generator's parameters (all of them go into the shards' header, so cached shards match)."""

    components: int = 2048
    zipf: float = 0.7  # component weights ∝ (k + 1)^-zipf: a few large categories, a long tail
    mean_weight: float = 0.55  # every centre leans on one mean direction (CLIP embeddings share one)
    spectrum: float = 0.5  # noise variance of the i-th principal direction ∝ (i + 1)^-spectrum…
    image_spread: float = 0.75  # …scaled so that cos(image, its centre) ≈ 1 / sqrt(1 + spread²) ≈ 0.8
    title_spread: float = 0.9
    modality_gap: float = 0.8  # titles sit off the images along one direction (CLIP's modality gap)
    query_noise: float = 0.35
    seed: int = 13


class ClusteredEmbeddings:
    """Products (image, title, fused) and text-like queries drawn around `components` cluster centres.

    `centres`: `(K, 2, dim)` image and title centres (real model outputs, from `centres_from`); None draws
    them. A batch of rows is deterministic in (seed, its first row, its length): N products are always made
    in the batches of `batches(N)`.
    """

    def __init__(self, spec: ClusterSpec, dim: int = DIM, centres: np.ndarray | None = None) -> None:
        self.spec, self.dim = spec, dim
        rng = np.random.default_rng(spec.seed)
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        scale = (np.arange(1, dim + 1) ** -spec.spectrum).astype(np.float32)
        self.mix = (scale[:, None] * rotation.T / np.linalg.norm(scale)).astype(np.float32)  # g @ mix: noise
        if centres is None:
            mean = _unit(rng.standard_normal(dim))
            image = _unit(spec.mean_weight * mean + math.sqrt(1 - spec.mean_weight**2)
                          * _unit(rng.standard_normal((spec.components, dim)).astype(np.float32) @ self.mix))
            gap = _unit(rng.standard_normal(dim))
            title = _unit(image + 0.6 * _unit(rng.standard_normal((spec.components, dim)) @ self.mix)
                          + spec.modality_gap * gap)
            centres = np.stack([image, title], axis=1)
        self.centres = centres.astype(np.float32)
        weights = (np.arange(1, len(self.centres) + 1) ** -spec.zipf)
        self.cumulative = np.cumsum(weights / weights.sum())

    def components(self, rows: np.ndarray) -> np.ndarray:
        uniform = np.random.default_rng([self.spec.seed, 1, int(rows[0]), len(rows)]).random(len(rows))
        return np.minimum(np.searchsorted(self.cumulative, uniform), len(self.centres) - 1)

    def products(self, start: int, n: int) -> dict[str, np.ndarray]:
        """Rows start … start+n−1: `image`, `title`, `fused` `(n, dim)` float32, unit length."""
        rng = np.random.default_rng([self.spec.seed, 2, start, n])
        k = self.components(np.arange(start, start + n))
        noise = rng.standard_normal((2 * n, self.dim), dtype=np.float32) @ self.mix
        image = _unit(self.centres[k, 0] + self.spec.image_spread * noise[:n])
        title = _unit(self.centres[k, 1] + self.spec.title_spread * noise[n:])
        weights = DEFAULT_FIELD_WEIGHTS
        return {"image": image, "title": title, "fused": _unit(weights.image * image + weights.title * title)}

    def queries(self, n: int, products: int, seed: int) -> np.ndarray:
        """`(n, dim)` text-like queries: the title vector of a random one of the `products` stored products
        plus noise, unit length."""
        rng = np.random.default_rng([self.spec.seed, 3, seed])
        rows = np.sort(rng.integers(0, products, n))
        titles, made = [], {}
        for row in rows.tolist():
            _, start, count = next(b for b in batches(products) if b[1] <= row < b[1] + b[2])
            if start not in made:
                made = {start: self.products(start, count)["title"]}
            titles.append(made[start][row - start])
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) @ self.mix
        return _unit(np.stack(titles) + self.spec.query_noise * noise)


GENERATION_BATCH = 8192


def batches(n: int) -> list[tuple[int, int, int]]:
    """(corpus, first row, rows) of the batches N products are generated in: rows [0, N/2) are corpus 1."""
    half = n // 2
    return [(corpus, start, min(GENERATION_BATCH, last - start))
            for corpus, first, last in ((1, 0, half), (2, half, n)) for start in range(first, last, GENERATION_BATCH)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def centres_from(embeddings: Path, components: int) -> np.ndarray:
    """`(K, 2, dim)` image and title centres: rows of a real embeddings folder (`gcl-vdb embed`) with both
    fields, up to `components` of them."""
    manifest = read_manifest(embeddings)
    picked: list[np.ndarray] = []
    for part in manifest.files:
        table = pq.read_table(embeddings / part.path)
        encoded = embedded_batch(ReadBatch(part.corpus, 0, None, 0, []), table.combine_chunks().to_batches()[0],
                                 manifest.header.dim)
        both = encoded.present["image"] & encoded.present["title"]
        picked.append(np.stack([encoded.vectors["image"][both], encoded.vectors["title"][both]], axis=1))
        if sum(map(len, picked)) >= components:
            break
    centres = np.concatenate(picked)[:components]
    if len(centres) < 1000:
        print(f"note: only {len(centres)} real centres in {embeddings} (the issue asks for ≥ 1,000 components)")
    return centres


def write_shards(out: Path, n: int, generator: ClusteredEmbeddings, key: str) -> dict[str, Any]:
    """N products as one complete embeddings folder (what `gcl-vdb embed` writes); cached by `key`."""
    if out.is_dir():
        try:
            manifest = read_manifest(out)
            if manifest.header.dataset.get("root") == key and sum(f.rows for f in manifest.files) == n:
                return {"seconds": 0.0, "cached": True, "bytes": sum(f.bytes for f in manifest.files)}
        except Exception:  # noqa: BLE001 (a partial folder from an interrupted run: write it again)
            pass
        shutil.rmtree(out)
    started = time.perf_counter()
    identity = ModelIdentity("synthetic-clustered", "0" * 64, generator.dim,
                             Preprocessing(224, (0.5,) * 3, (0.5,) * 3, "bicubic", "shortest", 0, 77))
    header = ShardHeader(identity, DEFAULT_FIELD_WEIGHTS, "float32", 1,
                         {"root": key, "layout": "synthetic", "images_dir": "", "corpora": "1,2"})
    folder = out / shard_dir_name(WHOLE)
    folder.mkdir(parents=True)
    record = ShardRecord(header, WHOLE)
    record.save(folder)
    sinks = {corpus: PartsSink(folder, header, {corpus: 0}, part_rows=65_536) for corpus in (1, 2)}
    for corpus, start, count in batches(n):
        vectors = generator.products(start, count)
        ids = [f"p{i:08d}" for i in range(start, start + count)]
        payloads = [product_payload(pid, _title(i), None, corpus) for i, pid in enumerate(ids, start)]
        present = {name: np.ones(count, dtype=bool) for name in vectors}
        cursor = start + count - (0 if corpus == 1 else n // 2)
        sinks[corpus].write(EncodedBatch(ReadBatch(corpus, cursor, None, 0, []), ids, vectors, present, payloads, []),
                            None)
        if sinks[corpus].due():
            sinks[corpus].flush()
    for sink in sinks.values():
        sink.flush()
    record.completed(list_parts(folder, out)).save(folder)
    manifest, _ = assemble_manifest(out)
    assert manifest is not None
    write_manifest(manifest)
    return {"seconds": round(time.perf_counter() - started, 1), "cached": False,
            "bytes": sum(f.bytes for f in manifest.files)}


_WORDS = ("red", "blue", "linen", "summer", "dress", "leather", "boots", "wool", "scarf", "denim", "jacket",
          "silver", "ring", "cotton", "shirt", "running", "shoes", "canvas", "bag", "floral", "skirt")


def _title(i: int) -> str:
    return " ".join(_WORDS[(i * p) % len(_WORDS)] for p in (1, 7, 13, 3)) + f" {i % 997}"
