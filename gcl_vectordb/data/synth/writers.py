"""Write a generated benchmark in the official Marqo-GS layout or the Hugging Face parquet layout.

Official: `corpus_{1,2}.json`, and per split `<stem>.csv`, `<stem>_gt_dev.json`, `<stem>_gt_test.json`,
`<stem>_queries.json`; JPEGs under `images/`. `image_local` points into an archive path
(`/archive/images_archive/synth/…`), like the real corpus, so readers must re-root it.
Parquet: `data/<hf_split>-00000-of-00001.parquet` with the HF columns and the image bytes in every row.

Ground truth files (our definition; the originals' construction is not published): a split's queries,
in query_id order, are shuffled with the seed and halved — the first half (rounded up) is dev, the rest
test; each is `{query text: {product_id: score_linear}}` in list order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gcl_vectordb.data.records import SPLITS, Split
from gcl_vectordb.data.synth.catalogue import STREAM_GT, Catalogue, SynthData
from gcl_vectordb.data.synth.vocabulary import BRANDS, SLOTS, VALUES

IMAGES_FOLDER = "images"
ARCHIVE_ROOT = "/archive/images_archive"
NO_SCORE = 1
PARQUET_ROW_GROUP = 2048


def image_relpath(index: int, product_id: str) -> str:
    """Where product `index`'s JPEG lives below the images folder (1000 per sub-folder)."""
    return f"synth/{index // 1000:04d}/{product_id}.jpg"


def image_local(index: int, product_id: str) -> str:
    return f"{ARCHIVE_ROOT}/{image_relpath(index, product_id)}"


def pair_frame(data: SynthData, rows: np.ndarray, with_images: bool) -> pd.DataFrame:
    """The split table of `rows` (indices into data.lists) in the official CSV column order."""
    lists, catalogue = data.lists, data.catalogue
    queries, products = lists.query[rows], lists.product[rows]
    position = lists.position[rows].astype(np.int64)
    columns: dict[str, object] = {
        "query": [data.queries.texts[q] for q in queries.tolist()],
        "product_id": [catalogue.product_ids[p] for p in products.tolist()],
        "title": [catalogue.titles[p] for p in products.tolist()],
    }
    if with_images:
        columns["image_local"] = [image_local(p, catalogue.product_ids[p]) for p in products.tolist()]
    columns.update({
        "position": position,
        "score_linear": data.results_per_query + 1 - position,
        "score_reciprocal": 1.0 / position,
        "no_score": np.full(len(rows), NO_SCORE, dtype=np.int64),
        "pair_id": rows.astype(np.int64),
        "query_id": queries.astype(np.int64) + 1,
    })
    return pd.DataFrame(columns)


def _ground_truth(data: SynthData, rows: np.ndarray, split_number: int, seed: int) -> tuple[dict, dict, dict]:
    """`(dev, test, queries)`: gt halves `{query: {product_id: score_linear}}` and `{query_id: query}`."""
    lists = data.lists
    in_split = np.unique(lists.query[rows])
    order = np.random.default_rng((seed, STREAM_GT, split_number)).permutation(len(in_split))
    dev_queries = set(in_split[order[: (len(in_split) + 1) // 2]].tolist())
    dev: dict[str, dict[str, int]] = {}
    test: dict[str, dict[str, int]] = {}
    for q in in_split.tolist():
        (dev if q in dev_queries else test)[data.queries.texts[q]] = {}
    for q, p, position in zip(lists.query[rows].tolist(), lists.product[rows].tolist(),
                              lists.position[rows].tolist(), strict=True):
        half = dev if q in dev_queries else test
        half[data.queries.texts[q]][data.catalogue.product_ids[p]] = data.results_per_query + 1 - position
    queries = {str(q + 1): data.queries.texts[q] for q in in_split.tolist()}
    return dev, test, queries


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def _corpus_entry(catalogue: Catalogue, index: int, with_images: bool,
                  captions: Sequence[str] | None = None) -> dict[str, str]:
    entry = {"title": catalogue.titles[index]}
    if captions is not None:
        entry["caption"] = captions[index]
    if with_images:
        entry["image_local"] = image_local(index, catalogue.product_ids[index])
    for slot, value in zip(SLOTS, catalogue.attributes[index].tolist(), strict=True):
        entry[slot] = VALUES[slot][value]
    entry["brand"] = BRANDS[catalogue.brands[index]]
    return entry


def write_corpus_json(path: Path, data: SynthData, corpus: int, with_images: bool) -> int:
    """Stream `{product_id: {...}}` for the corpus's referenced products; returns how many."""
    return write_products_json(path, data.catalogue, data.referenced_products(corpus).tolist(), with_images)


def write_products_json(path: Path, catalogue: Catalogue, indices: list[int], with_images: bool,
                        captions: Sequence[str] | None = None) -> int:
    """Stream `{product_id: {...}}` for the catalogue's products `indices`, in that order (with a "caption"
    field from `captions`, by catalogue index, when given); returns how many."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("{")
        for start in range(0, len(indices), 10_000):
            handle.write(("" if start == 0 else ", ") + ", ".join(
                f"{json.dumps(catalogue.product_ids[i])}: "
                f"{json.dumps(_corpus_entry(catalogue, i, with_images, captions), ensure_ascii=False)}"
                for i in indices[start : start + 10_000]
            ))
        handle.write("}")
    return len(indices)


def write_official(root: Path, data: SynthData, seed: int, with_images: bool) -> dict[str, int]:
    """Corpus JSONs and the four splits' files (images are written by the caller); rows per split."""
    for corpus in (1, 2):
        write_corpus_json(root / f"corpus_{corpus}.json", data, corpus, with_images)
    pairs = {}
    for number, split in enumerate(SPLITS):
        rows = data.split_rows(split)
        pair_frame(data, rows, with_images).to_csv(root / f"{split.stem}.csv", index=False)
        dev, test, queries = _ground_truth(data, rows, number, seed)
        _write_json(root / f"{split.stem}_gt_dev.json", dev)
        _write_json(root / f"{split.stem}_gt_test.json", test)
        _write_json(root / f"{split.stem}_queries.json", queries)
        pairs[split.name] = len(rows)
    return pairs


def _parquet_table(data: SynthData, split: Split, rows: np.ndarray, images: dict[int, bytes] | None) -> pa.Table:
    frame = pair_frame(data, rows, with_images=False)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if images is None:
        image = pa.nulls(len(rows), type=image_type)
    else:
        products = data.lists.product[rows].tolist()
        image = pa.StructArray.from_arrays(
            [pa.array([images[p] for p in products], pa.binary()),
             pa.array([f"{data.catalogue.product_ids[p]}.jpg" for p in products], pa.string())],
            fields=list(image_type),
        )
    columns = {"image": image}
    for name in ("query", "product_id", "position", "title", "pair_id", "score_linear",
                 "score_reciprocal", "no_score", "query_id"):
        values = frame[name]
        columns[name] = pa.array(values.to_numpy() if values.dtype.kind in "if" else values.tolist())
    table = pa.table(columns)
    features = {
        name: {"dtype": str(table.schema.field(name).type).replace("double", "float64"), "_type": "Value"}
        for name in table.column_names if name != "image"
    }
    features["image"] = {"_type": "Image"}
    metadata = {"info": {"features": features}, "split": split.hf_name}
    return table.replace_schema_metadata({"huggingface": json.dumps(metadata)})


def write_parquet(root: Path, data: SynthData, images: dict[int, bytes] | None) -> dict[str, int]:
    """One parquet file per split under `root/data`; rows per split."""
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {}
    for split in SPLITS:
        rows = data.split_rows(split)
        table = _parquet_table(data, split, rows, images)
        path = folder / f"{split.hf_name}-00000-of-00001.parquet"
        pq.write_table(table, path, row_group_size=PARQUET_ROW_GROUP)
        pairs[split.name] = len(rows)
    return pairs
