"""How fast `gcl-vdb data synth` writes a benchmark with images, against the same run without images.

    python benchmarks/synth_speed.py            # 10k products with 64 px images (the issue's figure)
    python benchmarks/synth_speed.py --quick    # 1k products: proves the script works

Writes benchmarks/results/synth_speed.{json,md} (`.quick.` in the name for --quick runs, not committed).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout, not an installed copy

from _results import write_results  # noqa: E402

from gcl_vectordb.data.synth import SynthConfig, synthesize  # noqa: E402


def _run(out: Path, **options) -> dict[str, float]:
    started = time.perf_counter()
    report = synthesize(SynthConfig(out=out, **options))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "images": report.images,
            "products": sum(c.products for c in report.info.corpora),
            "pairs": sum(s.pairs for s in report.info.splits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k products instead of 10k")
    parser.add_argument("--products", type=int, default=None)
    args = parser.parse_args()
    products = args.products or (1_000 if args.quick else 10_000)
    queries = max(5, min(2_000, products // 8))
    common = dict(products=products, queries=queries, image_size=64, seed=0, results_per_query=50)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _run(Path(tmp) / "no-images", images=False, **common)
        official = _run(Path(tmp) / "official", images=True, **common)
        parquet = _run(Path(tmp) / "parquet", images=True, format="parquet", **common)
    result = {
        "benchmark": "synth_speed", "quick": args.quick,
        "machine": platform.processor() or platform.machine(),
        "config": common, "baseline_no_images": baseline, "official_with_images": official,
        "parquet_with_images": parquet,
        "images_per_second": round(official["images"] / official["seconds"], 1),
        "ratio_with_to_without_images": round(official["seconds"] / baseline["seconds"], 2),
    }
    write_results("synth_speed", result, full_size=products == 10_000, markdown=(
        f"# synth speed ({products:,} products, {queries:,} queries, 64 px)\n\n"
        "| run | seconds | products | pairs | images |\n|---|---:|---:|---:|---:|\n"
        + "".join(f"| {name} | {r['seconds']:.2f} | {r['products']:,} | {r['pairs']:,} | {r['images']:,} |\n"
                  for name, r in (("no images (baseline)", baseline), ("official + images", official),
                                  ("parquet + images", parquet)))
        + f"\n{result['images_per_second']:,} images/s; with images takes "
          f"{result['ratio_with_to_without_images']}× the time of the same run without.\n"
    ))


if __name__ == "__main__":
    main()
