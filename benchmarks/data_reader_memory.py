"""Peak memory of reading a split + its corpus: the streaming reader against a naive full load, both layouts.

    python benchmarks/data_reader_memory.py            # 1M rows + 1M products, official and HF parquet layout
    python benchmarks/data_reader_memory.py --quick    # 20k: proves the script works

Each mode runs in a fresh interpreter; its figure is peak RSS (ru_maxrss) minus the RSS after imports:
- naive: `pandas.read_csv(csv)` whole + `json.load(corpus)` whole (what the original evaluation code does);
- streaming: `iter_judgments` over the split + `iter_products` over the corpus (batches, nothing kept);
- read_split: the whole normalised split table (what training and evaluation hold) + streaming products;
- parquet-naive: `pandas.read_parquet` of the HF layout's split file whole (image bytes included);
- parquet-streaming: `iter_judgments` + `iter_products` over the same file (what `gcl-vdb data download
  --source hf` gives: `data/in_domain-00000-of-00001.parquet`, HF columns, image bytes in every row,
  row groups of 1,000 rows as the `datasets` library writes image tables).
Writes benchmarks/results/data_reader_memory.{json,md} (`.quick.` for --quick runs, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _results import write_results  # noqa: E402

from gcl_vectordb.data.synth.catalogue import make_catalogue  # noqa: E402
from gcl_vectordb.data.synth.text import make_queries  # noqa: E402
from gcl_vectordb.data.synth.writers import image_local  # noqa: E402

CHILD = r"""
import json, resource, sys, time
mode, root = sys.argv[1], sys.argv[2]
import pandas as pd
from gcl_vectordb.data import open_dataset

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

try:  # reset the peak (VmHWM) to the current RSS, so imports do not count
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
except OSError:
    pass
base = status_mb("VmRSS")
started = time.perf_counter()
if mode == "naive":
    table = pd.read_csv(f"{root}/query_0_product_id_0.csv")
    corpus = json.load(open(f"{root}/corpus_1.json"))
    rows, products = len(table), len(corpus)
elif mode == "parquet-naive":
    table = pd.read_parquet(f"{root}/hf/data/in_domain-00000-of-00001.parquet")
    rows, products = len(table), table["product_id"].nunique()
else:
    dataset = open_dataset(root if mode in ("streaming", "read_split") else f"{root}/hf")
    if mode in ("streaming", "parquet-streaming"):
        rows = sum(len(b) for b in dataset.iter_judgments("in-domain", batch_size=10_000))
    else:
        rows = len(dataset.read_split("in-domain"))
    products = sum(len(b) for b in dataset.iter_products(1, batch_size=1024, check_images=False))
peak = status_mb("VmHWM")
print(json.dumps({"mode": mode, "rows": rows, "products": products, "seconds": time.perf_counter() - started,
                  "rss_after_imports_mb": base, "peak_rss_mb": peak, "peak_over_imports_mb": peak - base}))
"""


MODES = ("naive", "streaming", "read_split", "parquet-naive", "parquet-streaming")


def write_inputs(root: Path, rows: int, products: int) -> None:
    """corpus_1.json with `products` entries and an in-domain CSV with `rows` rows, official columns."""
    import pandas as pd

    catalogue = make_catalogue(products, seed=0)
    with (root / "corpus_1.json").open("w") as handle:
        handle.write("{")
        for i, product_id in enumerate(catalogue.product_ids):
            entry = {"title": catalogue.titles[i], "image_local": image_local(i, product_id)}
            handle.write(("" if i == 0 else ", ") + f"{json.dumps(product_id)}: {json.dumps(entry)}")
        handle.write("}")
    rng = np.random.default_rng(0)
    queries = make_queries(min(2_000, max(5, rows // 500)), rng)
    per_query = rows // len(queries.texts) + 1
    query = np.repeat(np.arange(len(queries.texts)), per_query)[:rows]
    position = (np.arange(rows) % per_query) + 1
    product = rng.integers(0, products, rows)
    pd.DataFrame({
        "query": np.asarray(queries.texts, dtype=object)[query],
        "product_id": np.asarray(catalogue.product_ids, dtype=object)[product],
        "title": np.asarray(catalogue.titles, dtype=object)[product],
        "image_local": [image_local(int(p), catalogue.product_ids[p]) for p in product],
        "position": position, "score_linear": per_query + 1 - position, "score_reciprocal": 1.0 / position,
        "no_score": 1, "pair_id": np.arange(rows), "query_id": query + 1,
    }).to_csv(root / "query_0_product_id_0.csv", index=False)
    write_parquet_split(root / "hf" / "data", catalogue, queries.texts, query, position, product)


def write_parquet_split(folder: Path, catalogue, texts: list[str], query: np.ndarray, position: np.ndarray,
                        product: np.ndarray, image_bytes: int = 256) -> None:
    """The same pairs as the HF parquet layout's in_domain file: HF columns, an `image` struct {bytes, path}
    in every row (`image_bytes` stand-in bytes of the product), row groups of 1,000 rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    ids = np.asarray(catalogue.product_ids, dtype=object)
    titles = np.asarray(catalogue.titles, dtype=object)
    rng = np.random.default_rng(1)  # incompressible, as JPEG bytes are
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("query", pa.string()), ("product_id", pa.string()), ("position", pa.int64()),
                        ("title", pa.string()), ("pair_id", pa.int64()), ("score_linear", pa.int64()),
                        ("score_reciprocal", pa.float64()), ("no_score", pa.int64()), ("query_id", pa.int64())])
    rows = len(query)
    with pq.ParquetWriter(folder / "in_domain-00000-of-00001.parquet", schema) as writer:
        for start in range(0, rows, 100_000):
            part = slice(start, min(start + 100_000, rows))
            chosen = product[part]
            noise = rng.bytes(image_bytes * len(chosen))
            images = pa.StructArray.from_arrays(
                [pa.array([noise[i * image_bytes:(i + 1) * image_bytes] for i in range(len(chosen))], pa.binary()),
                 pa.nulls(len(chosen), pa.string())], names=["bytes", "path"])
            writer.write_table(pa.table({
                "image": images, "query": np.asarray(texts, dtype=object)[query[part]], "product_id": ids[chosen],
                "position": position[part], "title": titles[chosen], "pair_id": np.arange(rows)[part],
                "score_linear": (position.max() + 1 - position[part]), "score_reciprocal": 1.0 / position[part],
                "no_score": np.ones(len(chosen), dtype=np.int64), "query_id": query[part] + 1,
            }, schema=schema), row_group_size=1000)


def measure(mode: str, root: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(root)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k rows and products instead of 1M")
    parser.add_argument("--size", type=int, default=None, help="rows and products (overrides the default)")
    args = parser.parse_args()
    size = args.size or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_inputs(root, rows=size, products=size)
        generated = time.perf_counter() - started
        sizes_mb = {p.name: round(p.stat().st_size / 2**20, 1) for p in root.iterdir() if p.is_file()}
        sizes_mb |= {f"hf/data/{p.name}": round(p.stat().st_size / 2**20, 1) for p in (root / "hf" / "data").iterdir()}
        runs = {mode: measure(mode, root) for mode in MODES}
    for mode, run in runs.items():
        naive = runs["parquet-naive" if mode.startswith("parquet") else "naive"]["peak_over_imports_mb"]
        run["ratio_naive_to_this"] = round(naive / max(run["peak_over_imports_mb"], 1e-3), 2)
    result = {"benchmark": "data_reader_memory", "quick": args.quick, "rows": size, "products": size,
              "machine": platform.machine(), "file_mb": sizes_mb, "generate_seconds": round(generated, 1),
              "runs": runs}
    write_results("data_reader_memory", result, full_size=size == 1_000_000, markdown=(
        f"# reader peak memory ({size:,}-row split + {size:,}-product corpus; official layout without images, "
        f"HF parquet layout with {256}-byte stand-in images)\n\n"
        f"Files: {', '.join(f'{k} {v} MB' for k, v in sizes_mb.items())}.\n\n"
        "Naive ÷ this compares each layout with its own naive load (`read_csv` + `json.load`, `read_parquet`).\n\n"
        "| mode | peak RSS over imports (MB) | seconds | naive ÷ this |\n|---|---:|---:|---:|\n"
        + "".join(f"| {mode} | {r['peak_over_imports_mb']:.0f} | {r['seconds']:.1f} "
                  f"| {r['ratio_naive_to_this']} |\n" for mode, r in runs.items())
    ))


if __name__ == "__main__":
    main()
