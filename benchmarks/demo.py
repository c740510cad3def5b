"""The demo as a new user runs it: `gcl-vdb demo` from nothing, timed, then its page in headless Chromium.

    python benchmarks/demo.py [--baseline] [--quick]

Runs `python -m gcl_vectordb demo` in a fresh temporary folder (cold: no dataset, model or store), records
the wall time and each stage's seconds, runs it again to time the resume (every stage skipped), and takes
a screenshot of the results page (docs/demo.png) with Debian's headless Chromium. The issue's goal: the
whole demo in ≤ 10 minutes on this 2-core machine. --quick: 120 products, 2 training steps.
Writes benchmarks/results/demo.{json,md} (or demo-baseline.*; `.quick.` under --quick).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._results import write_results  # noqa: E402

GOAL_SECONDS = 600
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def run_demo(work: Path, extra: list[str]) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gcl_vectordb", "demo", "--work", str(work / "gcl-vdb-work"),
                           "--qdrant", str(work / "gcl-vdb-store"), *extra],
                          cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"demo failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def screenshot(page: Path, png: Path) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: no screenshot", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                        "--window-size=1200,1500", page.as_uri()], capture_output=True, timeout=120, check=True)
    return png.is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="also train and compare the CLIP-loss model")
    parser.add_argument("--quick", action="store_true", help="tiny sizes that only prove the script works")
    args = parser.parse_args()
    extra = ["--baseline"] if args.baseline else []
    if args.quick:
        extra += ["--products", "120", "--queries", "30", "--max-steps", "2", "-o", "model.name=gcl-micro", "-o", "batch_size=8"]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        cold_s, output = run_demo(work, extra)
        resume_s, _ = run_demo(work, extra)
        state = json.loads((work / "gcl-vdb-work" / "demo-state.json").read_text())
        stages = {name: round(entry["seconds"], 1) for name, entry in state.items() if "seconds" in entry}
        png = ROOT / "docs" / ("demo.png" if not args.quick else "demo.quick.png")
        shot = screenshot(work / "gcl-vdb-work" / "demo.html", png) if not args.baseline else False
    result = {
        "command": "gcl-vdb demo" + (" --baseline" if args.baseline else ""), "quick": args.quick,
        "cold_seconds": round(cold_s, 1), "resume_seconds": round(resume_s, 1), "goal_seconds": GOAL_SECONDS,
        "goal_met": cold_s <= GOAL_SECONDS, "stage_seconds": stages,
        "screenshot": str(png.relative_to(ROOT)) if shot else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "summary_output": output,
    }
    lines = [f"# `{result['command']}` from nothing on {os.cpu_count()} CPU cores", "",
             f"Cold run: **{cold_s:.0f} s** (goal ≤ {GOAL_SECONDS} s: {'met' if result['goal_met'] else 'missed'}); "
             f"re-run with every stage finished: {resume_s:.1f} s.", "",
             "| stage | seconds |", "|---|---:|", *(f"| {k} | {v} |" for k, v in stages.items()), ""]
    name = "demo-baseline" if args.baseline else "demo"
    write_results(name, result, "\n".join(lines), full_size=not args.quick)


if __name__ == "__main__":
    main()
