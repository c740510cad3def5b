"""The 10M path at 10k, 100k and 1M products: load from embedding shards, index, query, evaluate, per storage.

    python benchmarks/scale.py --sizes 10000,100000,1000000   # the full run: ≈ 20 min + the 1M part
    python benchmarks/scale.py --sizes 1000000                # one size at a time works too (merged)
    python benchmarks/scale.py --quick                        # 3,000 products: proves the script works

The lead's quiet-machine command is the first (10k and 100k validated here, ≈ 35 min on 2 busy cores; the
1M part, ≤ 60 min on 2 quiet cores, was not run here). Each size is measured on its own and merged into
benchmarks/results/scale.{json,md} (`--quick` writes `scale.quick.*`); every finished (size, storage)
measurement is written at once, so an interrupted run keeps what it measured, and a re-run of a size
replaces that size's figures. About 20 GB of free disk under `--work` at 1M.

Per size N (half corpus 1, half corpus 2), 512-d vectors:
1. Shards: N products of clustered embeddings (`scale_data.ClusteredEmbeddings`: a mixture of
   `--components` ≥ 1,000 Gaussian components with Zipf weights, centres sharing a mean direction, noise
   with a power-law spectrum in a random rotation — an intrinsic dimension of ≈ 30, as CLIP embeddings
   have; or, with `--centres DIR`, components around the real model outputs of an embeddings folder),
   written as `gcl-vdb embed` writes them (`PartsSink`, manifest, sha256).
2. Per storage choice — the store's presets (`gcl_vectordb.store.storage`): `fp32-ram` = `ram` (float32 in
   RAM), `int8-disk` (int8 copies in RAM, the originals on disk, rescoring with oversampling 2), `float16`
   (float16 in RAM) — with HNSW on `fused` only, each step in a fresh process so that peak RSS is its own:
   - raw: the engine's upsert from memory — `upsert_arrays` of vectors held in numpy (the first 16,384 rows
     of the shards, cycled with new ids), the same batch size, the same collection settings, no index;
   - load: `gcl-vdb ingest --embeddings` (the library call) into a fresh collection, points/s. Raw and load
     alternate for `--rounds` rounds (3 up to 100k, 1 at 1M) and their medians give load ÷ raw (goal ≥ 0.85);
   - index: `optimize()` (HNSW on `fused` only, m 16, ef_construct `--ef-construct`) seconds; the loading
     process's peak RSS (VmHWM; also the sampled peaks of its anonymous and file-backed parts) and the
     collection's size on disk;
   - serving, in another fresh process: queries (`--queries`, text-like: a product's title vector plus
     noise; the corpus filter searches use), one at a time, p50/p99 ms of exact, HNSW (ef 64 … 1024,
     quantization ignored) and HNSW+int8 (int8-disk: the int8 vectors, rescored on the originals,
     oversampling 2), with recall@10 and NDCG@10 against exact (NDCG gains: 10 for exact rank 1 … 1 for
     rank 10, 0 outside); the resident memory (all, anonymous, file-backed) after opening, after the
     storage's own approximate search (the figure the memory goal compares: what a server of this
     collection holds), after exact search (which reads every `fused` vector, on disk too) and after
     evaluate;
   - evaluate: the library's `retrieve` + `score_run` (what `gcl-vdb evaluate` does after embedding the
     queries: exact top-1000 with the corpus filter, judging, metrics) over `--eval-queries` queries whose
     ground truth is their exact top-10 (so NDCG@10 must come out 1.0), seconds per query.
3. `scale_report`: the goals met or not, growth exponents between consecutive sizes (f ∝ N^b,
   b = log(f2/f1) / log(N2/N1)) of every figure, and a 10M sizing table from the two largest sizes (memory
   and disk: fixed + per-point slope; load: linear; index: its growth exponent), for one embedded node and
   a 3-node server cluster with 6 shards.

What the 1M run needs to fit 60 minutes on 2 cores: HNSW on `fused` only (image and title are searched
exactly), ef_construct 64 (the engine's default is 100: ≈ 1.4× the build time here; the ef sweep at query
time shows what recall costs instead), 100 queries and 50 evaluate queries, one raw/load round and the raw
baseline for `fp32-ram` only (the load path is the same for every storage; the ratio is stated for that
one), shards written once per size and deleted afterwards (`--keep-shards` keeps them), vectors generated
with numpy in batches (≈ 1 min for 1M × 3 × 512). Timings never decide a test; this script only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import qdrant_edge as edge  # noqa: E402
from _results import RESULTS, write_results  # noqa: E402
from scale_data import DIM, ClusteredEmbeddings, ClusterSpec, centres_from, write_shards  # noqa: E402
from scale_report import EF_SWEEP, GOALS, HNSW_EF, STORAGES, growth, markdown, sizing  # noqa: E402

from gcl_vectordb.data.records import get_split  # noqa: E402
from gcl_vectordb.ingest import IngestConfig, ingest_dataset  # noqa: E402
from gcl_vectordb.ingest.pipeline import ReadBatch  # noqa: E402
from gcl_vectordb.ingest.shard_format import read_manifest  # noqa: E402
from gcl_vectordb.ingest.shard_parts import embedded_batch  # noqa: E402
from gcl_vectordb.store import CollectionRecord, open_store, schema  # noqa: E402
from gcl_vectordb.store.embedded import SHARD_DIR  # noqa: E402
from gcl_vectordb.store.storage import StorageOptions  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
BATCH = 1024  # products per upsert, the same for raw and load
POOL = 16_384  # rows the raw baseline cycles through
RESULTS_FORMAT = 3


# ---------------------------------------------------------------- storage choices


STORAGE_PRESETS = {"fp32-ram": "ram", "int8-disk": "int8-disk", "float16": "float16"}


def storage_options(storage: str, ef_construct: int) -> StorageOptions:
    """The collection storage of one choice (`gcl_vectordb.store.storage` presets): HNSW on `fused` only."""
    if storage not in STORAGES:
        raise SystemExit(f"error: unknown storage option {storage!r} — use one of {', '.join(STORAGES)}")
    return StorageOptions.preset(STORAGE_PRESETS[storage]).with_settings(
        f"image.hnsw=off,title.hnsw=off,fused.hnsw_m=16,fused.hnsw_ef_construct={ef_construct}")


def raw_record(embeddings: Path, storage: StorageOptions) -> CollectionRecord:
    """The baseline's collection: what `ingest --embeddings` makes of these shards, same storage."""
    header = read_manifest(embeddings).header
    return CollectionRecord("raw", model_ref=header.model.model_ref, dim=header.dim,
                            field_weights=header.field_weights, storage=storage)


# ---------------------------------------------------------------- measurements (each in a child process)


class MemoryWatch:
    """Peaks of the process's anonymous and file-backed resident memory, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peaks = {"RssAnon": 0.0, "RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        status = _status()
        for key in self.peaks:
            self.peaks[key] = max(self.peaks[key], status.get(key, 0.0))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def report(self) -> dict[str, Any]:
        """MB: the process's peak RSS (VmHWM), and the sampled peaks of its anonymous and file parts."""
        return {"peak_rss": round(_status()["VmHWM"], 1), "peak_anon": round(self.peaks["RssAnon"], 1),
                "peak_file": round(self.peaks["RssFile"], 1)}


def _status() -> dict[str, float]:
    """/proc/self/status memory fields in MB."""
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def _resident() -> dict[str, float]:
    """MB resident now: all of it, its anonymous part, its file-backed part (mapped files the kernel may
    drop under memory pressure: the engine's vectors are memory-mapped, in RAM or on disk alike)."""
    status = _status()
    return {"rss": round(status["VmRSS"], 1), "anon": round(status.get("RssAnon", 0.0), 1),
            "file": round(status.get("RssFile", 0.0), 1)}


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def child_raw(task: dict[str, Any]) -> dict[str, Any]:
    """The engine's upsert from memory: the shards' first rows as numpy arrays, cycled with new ids."""
    embeddings, store_root = Path(task["embeddings"]), Path(task["store"])
    manifest = read_manifest(embeddings)
    import pyarrow.parquet as pq

    table = pq.read_table(embeddings / manifest.files[0].path).slice(0, POOL).combine_chunks()
    pool = embedded_batch(ReadBatch(1, 0, None, 0, []), table.to_batches()[0], manifest.header.dim)
    size = task["size"]
    with open_store(store_root) as store:
        store.create_collection(raw_record(embeddings, storage_options(task["storage"], task["ef_construct"])))
        started = time.perf_counter()
        for first in range(0, size, BATCH):
            at = first % len(pool.product_ids)
            count = min(BATCH, size - first, len(pool.product_ids) - at)
            rows = slice(at, at + count)
            ids = [f"raw{i:08d}" for i in range(first, first + count)]
            payloads = [{**p, "product_id": pid} for p, pid in zip(pool.payloads[rows], ids, strict=True)]
            store.upsert_arrays("raw", ids, {k: v[rows] for k, v in pool.vectors.items()},
                                {k: v[rows] for k, v in pool.present.items()}, payloads)
        store.flush("raw")
        seconds = time.perf_counter() - started
    shutil.rmtree(store_root / "raw")
    return {"points": size, "seconds": round(seconds, 2), "points_per_s": round(size / seconds, 1)}


def child_load(task: dict[str, Any]) -> dict[str, Any]:
    """`ingest --embeddings` into a fresh collection of one storage choice, then the index; the load
    process's memory and the collection's size on disk."""
    embeddings, store_root = Path(task["embeddings"]), Path(task["store"])
    shutil.rmtree(store_root / "bench", ignore_errors=True)
    result: dict[str, Any] = {}
    with MemoryWatch() as memory:
        report = ingest_dataset(IngestConfig(
            collection="bench", embeddings=embeddings, store=str(store_root), batch_size=BATCH, build_index=False,
            storage=storage_options(task["storage"], task["ef_construct"])))
        result["load"] = {"points": report.points_written, "seconds": report.seconds["pipeline"],
                          "points_per_s": round(report.points_per_s, 1), "verify_s": report.seconds["verify"],
                          "stages": {k: report.seconds[k] for k in ("read", "convert", "prepare", "upsert",
                                                                     "checkpoint") if k in report.seconds}}
        if not task["index"]:  # a round that only measures the load rate
            shutil.rmtree(store_root / "bench")
            return result
        with open_store(store_root) as store:
            started = time.perf_counter()
            store.optimize("bench")
            result["index_s"] = round(time.perf_counter() - started, 2)
    result["disk_bytes"] = _disk_bytes(store_root / "bench")
    result["memory_mb"] = memory.report()
    return result


def child_serve(task: dict[str, Any]) -> dict[str, Any]:
    """A fresh process serving the collection: queries of every mode, then `evaluate`; resident memory
    (all, anonymous, file-backed) after opening, after the storage's own HNSW mode (HNSW+int8 for
    int8-disk), after every HNSW mode, after exact search and after evaluate."""
    store_root = Path(task["store"])
    generator = ClusteredEmbeddings(ClusterSpec(**task["spec"]))
    with MemoryWatch() as memory:
        result = measure_queries(store_root / "bench" / SHARD_DIR, generator, task)
        result["evaluate"] = measure_evaluate(store_root, generator, task)
        result["memory_mb"] = memory.report() | {"after": result.pop("memory_after")}
        result["memory_mb"]["after"]["evaluate"] = _resident()
    if not task["keep_store"]:
        shutil.rmtree(store_root / "bench")
    return result


def _modes(storage: str) -> dict[str, tuple[edge.QuantizationSearchParams | None, tuple[int, ...]]]:
    """Search modes of a storage choice, cheapest first: (quantization params, HNSW ef values)."""
    modes: dict[str, tuple[edge.QuantizationSearchParams | None, tuple[int, ...]]] = {}
    if storage == "int8-disk":
        modes["hnsw+int8"] = (edge.QuantizationSearchParams(rescore=True, oversampling=2.0), EF_SWEEP)
    modes["hnsw"] = (edge.QuantizationSearchParams(ignore=True), EF_SWEEP)
    modes["exact"] = (None, (0,))
    return modes


def measure_queries(shard_path: Path, generator: ClusteredEmbeddings, task: dict[str, Any]) -> dict[str, Any]:
    """Latency one query at a time (p50/p99 ms) and recall@10 / NDCG@10 against exact, per mode and HNSW ef;
    the ground truth is computed first, by exact search, outside the timed runs."""
    vectors = generator.queries(task["queries"], task["size"], seed=1)
    corpora = np.random.default_rng(5).integers(1, 3, len(vectors))
    shard = edge.EdgeShard.load(str(shard_path))
    after = {"open": _resident()}

    def requests(params: edge.SearchParams) -> list[edge.QueryRequest]:
        return [edge.QueryRequest(10, query=edge.Query.Nearest(v.tolist(), using="fused"),
                                  filter=schema.edge_filter([("corpus", int(c))]), params=params,
                                  with_payload=False, with_vector=False) for v, c in zip(vectors, corpora, strict=True)]

    try:
        modes = _modes(task["storage"])
        results: dict[str, Any] = {}
        exact_ids: list[list[str]] | None = None
        for mode, (quantization, efs) in modes.items():
            for ef in efs:
                params = (edge.SearchParams(exact=True) if mode == "exact"
                          else edge.SearchParams(hnsw_ef=ef, quantization=quantization))
                batch = requests(params)
                for request in batch[:5]:  # warm-up
                    shard.query(request)
                latencies, found = [], []
                for request in batch:
                    started = time.perf_counter()
                    points = shard.query(request)
                    latencies.append(time.perf_counter() - started)
                    found.append([str(p.id) for p in points])
                if exact_ids is None:  # the truth, before anything is compared: exact, untimed
                    exact_ids = [[str(p.id) for p in shard.query(r)] for r in requests(edge.SearchParams(exact=True))]
                recall, ndcg = _agreement(found, exact_ids)
                results.setdefault(mode, {})[str(ef) if mode != "exact" else "exact"] = {
                    "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
                    "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 3),
                    "recall@10": round(recall, 4), "ndcg@10": round(ndcg, 4)}
            after[mode] = _resident()
        return {"queries": {mode: values for mode, values in results.items()}, "memory_after": after}
    finally:
        shard.close()


def _agreement(found: list[list[str]], exact: list[list[str]]) -> tuple[float, float]:
    """Mean recall@10 and NDCG@10 of `found` against `exact` (gain 10 … 1 by exact rank, 0 outside)."""
    discounts = 1 / np.log2(np.arange(2, 12))
    recalls, ndcgs = [], []
    for got, want in zip(found, exact, strict=True):
        gain = {pid: 10 - rank for rank, pid in enumerate(want)}
        ideal = sum(g * d for g, d in zip(sorted(gain.values(), reverse=True), discounts, strict=False))
        dcg = sum(gain.get(pid, 0) * d for pid, d in zip(got, discounts, strict=False))
        recalls.append(len(set(got) & set(want)) / max(len(want), 1))
        ndcgs.append(dcg / ideal if ideal else 1.0)
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def measure_evaluate(store_root: Path, generator: ClusteredEmbeddings, task: dict[str, Any]) -> dict[str, Any]:
    """`evaluate`'s search and judging through the store: exact top-1000 with the corpus filter, then
    judge_run + metrics, ground truth = each query's exact top-10."""
    from gcl_vectordb.evaluation.protocol import PreparedSplit
    from gcl_vectordb.evaluation.runner import EvalConfig, retrieve, score_run
    from gcl_vectordb.store import SearchRequest

    vectors = generator.queries(task["eval_queries"], task["size"], seed=2)
    split = get_split("in-domain")
    texts = tuple(f"query {i}" for i in range(len(vectors)))
    with open_store(store_root) as store:
        truth = store.search_batch("bench", [SearchRequest(v, limit=10, corpus=split.corpus, exact=True,
                                                           with_payload=False) for v in vectors])
        qrels = {q: {hit.product_id: 10 - rank for rank, hit in enumerate(hits)}
                 for q, hits in zip(texts, truth, strict=True)}
        prepared = PreparedSplit(split, texts, tuple(f"q{i}" for i in range(len(texts))), qrels, len(texts), 1000,
                                 1, len(texts), len(texts))
        config = EvalConfig(splits=(split.name,), k=1000, batch_size=64)
        started = time.perf_counter()
        run = retrieve(store, "bench", prepared, vectors, config, exact=True)
        table = score_run(prepared, run, config.k)
        seconds = time.perf_counter() - started
    return {"queries": len(texts), "seconds": round(seconds, 2), "s_per_query": round(seconds / len(texts), 4),
            "ndcg@10": round(table.mean()["ndcg@10"], 4)}


def run_child(kind: str, task: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(task)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {task['size']} {task['storage']} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- one size


def settings_for(size: int, args: argparse.Namespace) -> dict[str, Any]:
    large = size >= 1_000_000
    return {"ef_construct": args.ef_construct or 64, "rounds": args.rounds or (1 if large else 3),
            "queries": args.queries or (100 if large else 200),
            "eval_queries": args.eval_queries or (50 if large else 100),
            "raw_storages": list(STORAGES if not large or args.raw_all else ("fp32-ram",))}


def measure_size(size: int, args: argparse.Namespace, results: dict[str, Any], save) -> None:
    spec = ClusterSpec(components=args.components)
    centres = centres_from(args.centres, args.components) if args.centres else None
    generator = ClusteredEmbeddings(spec, centres=centres)
    key = f"synthetic-clustered:{json.dumps(asdict(spec), sort_keys=True)}:{args.centres or ''}"
    work = args.work / f"n{size}"
    embeddings = work / "shards"
    shards = write_shards(embeddings, size, generator, key)
    print(f"[{size:,}] shards: {shards}", flush=True)
    settings = settings_for(size, args)
    entry = results.setdefault("sizes", {}).setdefault(str(size), {})
    entry.update({"settings": settings, "shards": shards, "storages": entry.get("storages", {})})
    for storage in args.storages:
        task = {"size": size, "storage": storage, "embeddings": str(embeddings), "store": str(work / "store"),
                "spec": asdict(spec), "keep_store": False,
                **{k: v for k, v in settings.items() if k not in ("raw_storages", "rounds")}}
        measured: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                    "load_average": [round(x, 2) for x in os.getloadavg()]}
        raws, loads = [], []
        for round_ in range(settings["rounds"]):  # raw and load alternate; their medians are compared
            if storage in settings["raw_storages"]:
                raws.append(run_child("raw", task)["points_per_s"])
            last = round_ == settings["rounds"] - 1
            loaded = run_child("load", task | {"index": last})
            loads.append(loaded["load"]["points_per_s"])
            print(f"[{size:,} {storage}] round {round_ + 1}: raw {raws[-1:]} load {loads[-1]} points/s", flush=True)
        measured |= loaded
        measured["load"] |= {"rounds": loads, "points_per_s": float(np.median(loads))}
        if raws:
            measured["raw"] = {"rounds": raws, "points_per_s": float(np.median(raws))}
            measured["load_ratio"] = round(measured["load"]["points_per_s"] / measured["raw"]["points_per_s"], 3)
        measured["serve"] = run_child("serve", task)
        entry["storages"][storage] = measured
        print(f"[{size:,} {storage}] {json.dumps(measured)}", flush=True)
        save()
    if not args.keep_shards:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES[:2])), help="products per run, comma-separated")
    parser.add_argument("--storages", default=",".join(STORAGES), help=f"storage choices: {', '.join(STORAGES)}")
    parser.add_argument("--quick", action="store_true", help="3,000 products, results in scale.quick.*")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gcl-vdb-scale",
                        help="shards and stores (≈ 20 GB free at 1M)")
    parser.add_argument("--components", type=int, default=2048, help="Gaussian components (≥ 1,000)")
    parser.add_argument("--centres", type=Path, default=None, help="embeddings folder of real model outputs")
    parser.add_argument("--ef-construct", type=int, default=None, help="HNSW ef_construct (default 64)")
    parser.add_argument("--queries", type=int, default=None, help="latency queries (default 200; 100 at 1M)")
    parser.add_argument("--eval-queries", type=int, default=None, help="evaluate queries (default 100; 50 at 1M)")
    parser.add_argument("--raw-all", action="store_true", help="the raw baseline for every storage at 1M too")
    parser.add_argument("--rounds", type=int, default=None, help="raw/load rounds, medians compared (default 3; 1 at 1M)")
    parser.add_argument("--keep-shards", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "TASK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, task = args.child
        children = {"raw": child_raw, "load": child_load, "serve": child_serve}
        print(json.dumps(children[kind](json.loads(task))))
        return
    args.storages = [s.strip() for s in args.storages.split(",") if s.strip()]
    for storage in args.storages:
        storage_options(storage, 64)  # an unknown storage option: one line, before any work
    if args.components < 1000 and not args.quick:
        raise SystemExit("error: --components must be ≥ 1000 (a realistic mixture)")
    sizes = [3000] if args.quick else [int(s) for s in args.sizes.split(",")]
    stem = "scale.quick" if args.quick else "scale"
    path = RESULTS / f"{stem}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("format") != RESULTS_FORMAT:  # figures of an older script: not comparable, start over
        results = {}
    results |= {"benchmark": "scale", "format": RESULTS_FORMAT, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "dim": DIM,
                "batch": BATCH, "hnsw": {"m": 16, "ef_search": HNSW_EF, "indexed": "fused"}, "goals": GOALS}

    def save() -> None:
        results["growth"] = growth(results)
        results["sizing"] = sizing(results)
        write_results("scale", results, markdown(results), full_size=not args.quick, echo=False)

    for size in sizes:
        measure_size(size, args, results, save)
    save()
    print((RESULTS / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
