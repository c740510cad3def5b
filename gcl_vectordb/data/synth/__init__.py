"""The synthetic Marqo-GS benchmark (docs/protocol.md, "The synthetic benchmark"): drawn products, natural
queries, graded lists.

    from gcl_vectordb.data.synth import SynthConfig, synthesize
    report = synthesize(SynthConfig(out=Path("/tmp/gs"), products=2000, queries=300, seed=1))

The same seed gives byte-identical CSVs and JSONs. What the catalogue, queries, lists and splits are is
decided in `catalogue` (independent of images and format); `drawing` draws, `writers` writes.
The corpora hold the products that appear in at least one result list (as Marqo-GS, whose corpora are
built from its query–product pairs), so `--products` is the catalogue drawn from, an upper bound.

`synthesize_captions` writes an image–caption collection for pretraining instead: products drawn and
titled the same way from their own seed, every one in corpus_1.json with its JPEG and a `caption` field —
a short description such as "photo of a red dress", never equal to a title or to a query the vocabulary
can form — and no queries, result lists or splits (the trainer's `data.pairs = "captions"` reads it as
(caption, product) pairs):

    synthesize_captions(CaptionConfig(out=Path("/tmp/captions"), products=20000, seed=1001))
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from gcl_vectordb.data.info import DatasetInfo, dataset_info
from gcl_vectordb.data.synth.catalogue import STREAM_CAPTIONS, Catalogue, make_catalogue, make_data
from gcl_vectordb.data.synth.drawing import product_image_jpeg
from gcl_vectordb.data.synth.text import make_descriptions, max_queries
from gcl_vectordb.data.synth.writers import (
    IMAGES_FOLDER,
    image_relpath,
    write_official,
    write_parquet,
    write_products_json,
)
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.progress import NULL_PROGRESS, Progress

MANIFEST = "gcl-synth.json"
_OUTPUTS = ("corpus_*.json", "query_*_product_id_*", "data/*.parquet", MANIFEST)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. `results_per_query` is the list length N (score_linear = N + 1 − position)."""

    out: Path
    products: int = 3000
    queries: int = 400
    image_size: int = 64
    seed: int = 0
    format: Literal["official", "parquet"] = "official"
    images: bool = True
    results_per_query: int = 50
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        limit = max_queries()
        _check_settings(
            *_catalogue_checks(self.products, self.image_size, self.seed),
            (5 <= self.queries <= limit, f"queries must be in 5..{limit}, the distinct queries the "
                                         f"vocabulary allows (got {self.queries})"),
            (self.format in ("official", "parquet"),
             f"format must be official or parquet (got {self.format!r})"),
            (self.results_per_query >= 1, f"results per query must be ≥ 1 (got {self.results_per_query})"),
        )


def _catalogue_checks(products: int, image_size: int, seed: int) -> tuple[tuple[bool, str], ...]:
    return ((products >= 10, f"products must be ≥ 10 (got {products})"),
            (16 <= image_size <= 512, f"image size must be in 16..512 px (got {image_size})"),
            (seed >= 0, f"seed must be ≥ 0 (got {seed})"))


def _check_settings(*checks: tuple[bool, str]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclass(frozen=True)
class SynthReport:
    config: SynthConfig
    catalogue: int  # products drawn
    queries_train: int
    queries_unseen: int
    images: int  # JPEGs drawn
    seconds: float
    info: DatasetInfo  # the folder read back through the reader


@dataclass(frozen=True)
class CaptionConfig:
    """An image–caption collection: `products` drawn from `seed` (use a seed no benchmark uses)."""

    out: Path
    products: int = 20000
    image_size: int = 64
    seed: int = 1001
    overwrite: bool = False
    format: ClassVar[str] = "official"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        _check_settings(*_catalogue_checks(self.products, self.image_size, self.seed))


@dataclass(frozen=True)
class CaptionReport:
    config: CaptionConfig
    products: int
    seconds: float
    info: DatasetInfo


def synthesize_captions(config: CaptionConfig, progress: Progress = NULL_PROGRESS) -> CaptionReport:
    """Write the collection into `config.out` (corpus_1.json, images/, the manifest), then read it back."""
    started = time.perf_counter()
    _prepare(config)
    catalogue = make_catalogue(config.products, config.seed)
    captions = make_descriptions(catalogue.attributes, np.random.default_rng((config.seed, STREAM_CAPTIONS)))
    indices = list(range(config.products))
    _draw_images(config, catalogue, indices, progress)
    write_products_json(config.out / "corpus_1.json", catalogue, indices, with_images=True, captions=captions)
    manifest = {"generator": "gcl-vdb synthesize_captions", "kind": "captions", "products": config.products,
                "image_size": config.image_size, "seed": config.seed}
    (config.out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    info = dataset_info(config.out, check_images=True)
    return CaptionReport(config=config, products=config.products, seconds=time.perf_counter() - started, info=info)


def _prepare(config: SynthConfig | CaptionConfig) -> None:
    out = config.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder", "choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not config.overwrite:
            raise ConfigError(f"{out} is not empty", "choose an empty folder or pass --overwrite")
        for pattern in _OUTPUTS:
            for path in out.glob(pattern):
                path.unlink()
        shutil.rmtree(out / IMAGES_FOLDER / "synth", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _draw_images(
    config: SynthConfig | CaptionConfig, catalogue: Catalogue, referenced: list[int], progress: Progress
) -> dict[int, bytes]:
    """Draw the listed products; official: write JPEG files, parquet: return the bytes by catalogue index."""
    task = progress.task("drawing images", total=len(referenced), unit="images")
    kept: dict[int, bytes] = {}
    made_dirs: set[Path] = set()
    for number, index in enumerate(referenced, start=1):
        jpeg = product_image_jpeg(catalogue.attributes[index], config.image_size, config.seed, index)
        if config.format == "parquet":
            kept[index] = jpeg
        else:
            path = config.out / IMAGES_FOLDER / image_relpath(index, catalogue.product_ids[index])
            if path.parent not in made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(path.parent)
            path.write_bytes(jpeg)
        if number % 256 == 0 or number == len(referenced):
            task.update(completed=number)
    task.close()
    return kept


def synthesize(config: SynthConfig, progress: Progress = NULL_PROGRESS) -> SynthReport:
    """Generate the benchmark into `config.out`, then read it back (`dataset_info`) as a check."""
    started = time.perf_counter()
    _prepare(config)
    data = make_data(config.products, config.queries, config.results_per_query, config.seed, progress)
    referenced = np.unique(data.lists.product).tolist()  # only products in some list reach the corpora
    images = _draw_images(config, data.catalogue, referenced, progress) if config.images else {}
    task = progress.task("writing files", total=1, unit="layouts")
    if config.format == "parquet":
        write_parquet(config.out, data, images if config.images else None)
    else:
        write_official(config.out, data, config.seed, config.images)
    manifest = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items() if k != "out"}
    (config.out / MANIFEST).write_text(json.dumps({"generator": "gcl-vdb data synth", **manifest}, indent=2))
    task.advance(1)
    task.close()
    info = dataset_info(config.out, check_images=config.images)
    train = int(data.is_train.sum())
    return SynthReport(
        config=config, catalogue=config.products, queries_train=train,
        queries_unseen=config.queries - train, images=len(referenced) if config.images else 0,
        seconds=time.perf_counter() - started, info=info,
    )


__all__ = ["CaptionConfig", "CaptionReport", "SynthConfig", "SynthReport", "synthesize", "synthesize_captions"]
