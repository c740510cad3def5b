"""Encoder throughput: torch (CPU) vs ONNX Runtime fp32 vs ONNX Runtime int8, same batch, same run.

    python benchmarks/encoders.py            # gcl-tiny and ViT-B-32 (random weights), batch 32
    python benchmarks/encoders.py --quick    # tiny sizes: proves the script works in about a minute

Images are timed on already preprocessed pixels (`encode_pixels`: the towers only), texts end to end
(`encode_texts`: tokenizer + tower; both backends use the same tokenizer). Each figure is the median
of `--reps` rounds after three warm-up rounds;
each round times every backend in turn, so background load affects them alike. Writes benchmarks/results/encoders.{json,md}
(`encoders-quick.*` with --quick, which are not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from exporters import ExportConfig, export_bundle  # noqa: E402
from gcl_vectordb.encoders.models import create_clip_model  # noqa: E402
from gcl_vectordb.encoders.onnx_encoder import OnnxEncoder  # noqa: E402
from gcl_vectordb.encoders.torch_encoder import TorchEncoder  # noqa: E402

WORDS = ["red", "summer", "dress", "leather", "boots", "striped", "cotton", "shirt", "blue", "denim", "bag", "slim"]


def sample_texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(n)]


WARMUP_ROUNDS = 3  # torch needs about three calls per input shape before it reaches steady speed


def timed_interleaved(jobs: dict[str, callable], reps: int) -> dict[str, float]:
    """Median seconds per job over `reps` rounds; each round runs every job once, in turn, so that
    background load on a shared machine hits all backends alike. Untimed warm-up rounds first."""
    for _ in range(WARMUP_ROUNDS):
        for fn in jobs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(reps):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """This machine's fp32 GEMM throughput through torch (the threads set in main): the roof that both
    backends' tower time is spent under, since a ViT's forward is almost all matrix products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = timed_interleaved({"mm": lambda: torch.mm(a, b)}, reps)["mm"]
    return 2 * n**3 / seconds / 1e9


def image_gflop(loaded) -> float:
    """Forward FLOP of the image tower for one image (multiply and add counted apart), counted by torch.
    Gradients stay enabled: without them nn.MultiheadAttention takes its fused fast path, which the
    counter does not see (it would miss the attention projections)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loaded.model.visual(torch.zeros(1, 3, loaded.image_size, loaded.image_size))
    return counter.get_total_flops() / 1e9


def bench_model(arch: str, batch: int, reps: int, threads: int, workdir: Path) -> list[dict]:
    loaded = create_clip_model(arch)
    bundle = workdir / arch
    started = time.perf_counter()
    manifest = export_bundle(ExportConfig(out=bundle, model_ref=arch, variants=("fp32", "int8")))
    export_s = time.perf_counter() - started
    flop = image_gflop(loaded)
    texts = sample_texts(batch)
    pixels = np.random.default_rng(1).normal(size=(batch, 3, loaded.image_size, loaded.image_size)).astype(np.float32)
    encoders = {
        "torch fp32": TorchEncoder(loaded, device="cpu", batch_size=batch),
        "ORT fp32": OnnxEncoder(bundle, variant="fp32", device="cpu", threads=threads, batch_size=batch),
        "ORT int8": OnnxEncoder(bundle, variant="int8", device="cpu", threads=threads, batch_size=batch),
    }
    image_s = timed_interleaved({n: (lambda e=e: e.encode_pixels(pixels)) for n, e in encoders.items()}, reps)
    text_s = timed_interleaved({n: (lambda e=e: e.encode_texts(texts)) for n, e in encoders.items()}, reps)
    rows = []
    for name in encoders:
        variant = name.split()[-1]
        parity = {t: p.max_cosine_deviation for t, p in manifest.parity[variant].items()} if "ORT" in name else None
        rows.append({"model": arch, "backend": name, "batch": batch, "threads": threads,
                     "images_per_s": batch / image_s[name], "texts_per_s": batch / text_s[name],
                     "parity_max_cos_dev": parity, "export_s": export_s if name == "ORT fp32" else None,
                     "image_gflop": flop, "image_gflops": batch / image_s[name] * flop})
    base = rows[0]
    for row in rows:
        row["images_ratio"] = row["images_per_s"] / base["images_per_s"]
        row["texts_ratio"] = row["texts_per_s"] / base["texts_per_s"]
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Encoder throughput: torch vs ONNX Runtime (CPU)",
        "",
        f"{meta['cpu']}, {meta['threads']} threads, batch {meta['batch']}, median of {meta['reps']} interleaved rounds; "
        f"torch {meta['torch']}, onnxruntime {meta['onnxruntime']}; random weights. Ratios are against torch.",
        "",
        "| model | backend | images/s | × torch | texts/s | × torch | image tower GFLOP/s | of the fp32 GEMM roof |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    roof = meta["matmul_gflops"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['images_per_s']:.1f} | {r['images_ratio']:.2f} | "
                     f"{r['texts_per_s']:.1f} | {r['texts_ratio']:.2f} | {r['image_gflops']:.0f} | "
                     f"{r['image_gflops'] / roof:.0%} |")
    lines += ["", f"fp32 GEMM roof: torch.mm 2048² on the same threads, {roof:.0f} GFLOP/s. Image tower FLOP per image "
              "(torch's FlopCounterMode): " + ", ".join(sorted({f"{r['model']} {r['image_gflop']:.2f} GFLOP" for r in rows}))
              + ". int8 rows exceed the roof because their products run in 8-bit integers."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny batch and few repetitions (smoke run)")
    parser.add_argument("--models", default="gcl-tiny,ViT-B-32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    batch, reps = (4, 3) if args.quick else (args.batch, args.reps)
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models.split(","):
            rows += bench_model(arch, batch, reps, args.threads, Path(tmp))
    meta = {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
            "matmul_gflops": matmul_gflops(), "batch": batch, "reps": reps,
            "torch": torch.__version__, "onnxruntime": ort.__version__, "quick": args.quick}
    stem = "encoders-quick" if args.quick else "encoders"
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown(rows, meta)
    (results / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
