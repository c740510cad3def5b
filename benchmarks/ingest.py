"""Ingest throughput against the encoder alone, and the cold `gcl-vdb query` wall time.

    python benchmarks/ingest.py            # gcl-tiny on 10k products, ViT-B-32 (random weights) on 600
    python benchmarks/ingest.py --quick    # a few hundred products: proves the script works

Per model (an ONNX bundle made by `exporters.export_bundle`; ViT-B-32 has random weights, no network):
- encoder-only, the ceiling: the same products' images decoded into pixels beforehand, then per batch
  `encode_pixels` + `encode_texts` + `fused_document_vector` — no decoding, no upsert. Measured right
  before each ingest run, so that both see the same machine load.
- ingest: `gcl_vectordb.ingest` end to end into a fresh embedded store, with 2, 1 and 0 decode workers
  (0 = decoding in a thread of the ingest process). points/s = points written / pipeline seconds
  (worker start-up included, model load and index build excluded).
ratio = ingest points/s ÷ encoder-only points/s; the goal is ≥ 0.9 (decoding and upserts hidden behind
encoding). On 2 cores the decode workers and ONNX Runtime's threads share the same two CPUs, so the
decode CPU time is not free: the per-stage seconds in the results show where the time went.

Cold query: a fresh `python -m gcl_vectordb query "red summer dress"` process against each model's
collection (gcl-tiny: 10k products; embedded store, index built), median and best of several runs;
baseline: a bare `python -c pass`. Goal ≤ 2 s at 10k. Writes benchmarks/results/ingest.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from _results import write_results  # noqa: E402

from gcl_vectordb.data import open_dataset  # noqa: E402
from gcl_vectordb.domain import DEFAULT_FIELD_WEIGHTS  # noqa: E402
from gcl_vectordb.encoders import fused_document_vector, load_encoder  # noqa: E402
from gcl_vectordb.ingest import IngestConfig, ingest_dataset  # noqa: E402

GOAL_RATIO = 0.9
GOAL_COLD_S = 2.0
BATCH = 128
QUERY = "red summer dress"


@dataclass(frozen=True)
class Case:
    arch: str
    products: int
    image_size: int  # of the synthetic JPEGs (the model resizes them to its own input size)


def make_dataset(case: Case, out: Path) -> Path:
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    queries = min(2000, max(20, case.products // 10))
    synthesize(SynthConfig(out=out, products=case.products, queries=queries, image_size=case.image_size, seed=5))
    return out


def encoder_only(bundle: Path, data: Path) -> dict:
    """Products/s of the encoder on pre-decoded pixels + titles, in ingest's batches (the ceiling)."""
    encoder = load_encoder(str(bundle), batch_size=64)
    dataset = open_dataset(data)
    batches = []
    for corpus in dataset.corpora:
        for products in dataset.iter_products(corpus, batch_size=BATCH):
            pixels = np.stack([encoder.preprocessor.from_bytes(p.read_image_bytes()) for p in products])
            batches.append((pixels, [p.title for p in products]))
    encoder.encode_pixels(batches[0][0][:8])  # warm-up: ORT allocates on the first run
    encoder.encode_texts(batches[0][1][:8])
    count = sum(len(titles) for _, titles in batches)
    started = time.perf_counter()
    for pixels, titles in batches:
        image, title = encoder.encode_pixels(pixels), encoder.encode_texts(titles)
        present = {"image": np.ones(len(titles), bool), "title": np.ones(len(titles), bool)}
        fused_document_vector({"image": image, "title": title}, present, DEFAULT_FIELD_WEIGHTS)
    seconds = time.perf_counter() - started
    return {"products": count, "seconds": round(seconds, 3), "points_per_s": round(count / seconds, 2)}


def ingest_run(bundle: Path, data: Path, store: Path, workers: int, build_index: bool) -> dict:
    report = ingest_dataset(IngestConfig(collection="bench", data=data, model_ref=str(bundle), store=str(store),
                                 batch_size=BATCH, workers=workers, build_index=build_index))
    return {"workers": workers, "points": report.points_written, "points_per_s": round(report.points_per_s, 2),
            "seconds": report.seconds, "rejects": report.rejects}


def bench_model(case: Case, bundle: Path, tmp: Path) -> tuple[dict, Path]:
    """Each ingest run right after its own encoder-only run: a shared machine's load drifts."""
    data = make_dataset(case, tmp / f"data-{case.arch}")
    runs = []
    for workers in (2, 1, 0):
        baseline = encoder_only(bundle, data)
        run = ingest_run(bundle, data, tmp / f"store-{case.arch}-w{workers}", workers, build_index=workers == 2)
        run["encoder_only"] = baseline
        run["ratio"] = round(run["points_per_s"] / baseline["points_per_s"], 3)
        runs.append(run)
    row = {"model": case.arch, "products": runs[0]["encoder_only"]["products"], "image_px": case.image_size,
           "ingest": runs}
    print(f"{case.arch}: " + ", ".join(
        f"{r['workers']} workers {r['points_per_s']:.1f} vs encoder-only {r['encoder_only']['points_per_s']:.1f} "
        f"points/s ({r['ratio']:.2f}x)" for r in runs), flush=True)
    return row, tmp / f"store-{case.arch}-w2"


def wall(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def cold_query(store: Path, points: int, runs: int, tmp: Path) -> dict:
    """Wall seconds of fresh `python -m gcl_vectordb query` processes (ONNX bundle, embedded store)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gcl_vectordb", "query", QUERY, "--collection", "bench", "--qdrant", str(store)]
    wall(command, env, tmp)  # page cache warm, as for a user's second query
    times = [wall(command, env, tmp) for _ in range(runs)]
    bare = [wall([sys.executable, "-c", "pass"], env, tmp) for _ in range(runs)]
    return {"points": points, "runs": runs, "median_s": round(statistics.median(times), 3),
            "best_s": round(min(times), 3), "python_startup_s": round(statistics.median(bare), 3),
            "goal_s": GOAL_COLD_S}


def markdown(result: dict) -> str:
    lines = [f"# Ingest throughput vs encoder-only ({result['machine']}, batch {BATCH})", "",
             "| model | products | image px | encoder-only points/s | decode workers | ingest points/s | ratio "
             "| encoder waited s | decode CPU s | encode s | upsert s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["models"]:
        for run in row["ingest"]:
            s = run["seconds"]
            lines.append(f"| {row['model']} | {row['products']} | {row['image_px']} | {run['encoder_only']['points_per_s']:.1f} "
                         f"| {run['workers']} | {run['points_per_s']:.1f} | {run['ratio']:.2f} | {s['wait']:.1f} "
                         f"| {s['decode']:.1f} | {s['encode']:.1f} | {s['upsert']:.1f} |")
    lines += ["", f"Goal: ingest ≥ {GOAL_RATIO}× encoder-only.", "",
              f"Cold `gcl-vdb query` (a fresh process, embedded store; goal ≤ {GOAL_COLD_S} s at 10k products):", "",
              "| model | points | median s | best s | bare `python -c pass` s |", "|---|---|---|---|---|"]
    for row in result["models"]:
        cold = row["cold_query"]
        lines.append(f"| {row['model']} | {cold['points']} | {cold['median_s']:.2f} | {cold['best_s']:.2f} "
                     f"| {cold['python_startup_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few hundred products (smoke run)")
    args = parser.parse_args()
    from exporters import ExportConfig, export_bundle

    cases = ([Case("gcl-tiny", 300, 128), Case("ViT-B-32", 48, 256)] if args.quick
             else [Case("gcl-tiny", 10_000, 128), Case("ViT-B-32", 600, 256)])
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for case in cases:
            bundle = tmp / f"bundle-{case.arch}"
            export_bundle(ExportConfig(out=bundle, model_ref=case.arch))
            row, store = bench_model(case, bundle, tmp)
            row["cold_query"] = cold_query(store, row["products"], 3 if args.quick else 7, tmp)
            print(f"{case.arch}: cold query median {row['cold_query']['median_s']} s", flush=True)
            rows.append(row)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "quick": args.quick, "batch": BATCH,
              "goal_ratio": GOAL_RATIO, "goal_cold_s": GOAL_COLD_S, "models": rows}
    write_results("ingest", result, markdown(result), full_size=not args.quick)


if __name__ == "__main__":
    main()
