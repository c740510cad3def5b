"""Fault injection: every fault of issue 12, several times, and what was lost (the goal: nothing).

    python benchmarks/reliability.py              # 4 trials per fault: benchmarks/results/reliability.{json,md}
    python benchmarks/reliability.py --quick      # 1 trial per fault (reliability.quick.*, git-ignored)

Once: a synthetic dataset (600 products, 300 per corpus, 32 px), a gcl-micro ONNX bundle, the reference
collection of one undisturbed ingest, and another gcl-micro (other weights, the same dim). Each trial runs
the real CLI in fresh processes on an empty store, injects its fault, re-runs the same ingest where the
fault left work undone, and compares the collection with the reference: points missing or extra, vectors
(max |Δ|), top-10 of 12 queries (fused and rrf, exact), the ingest status `collections info` reports. It
also records every process's exit code, and counts crashes: a traceback, a signal (SIGBUS = 135) or any
exit but 0 and the one-line refusal 1.

Faults (the ingest runs `--batch-size 16 --workers 1`):
- `sigkill`: SIGKILL once a random number of points is written, then the same command again;
- `query-loop`: two loops of `gcl-vdb query` while an ingest runs;
- `list-loop`: a loop of `gcl-vdb collections list` while an ingest runs;
- `two-ingests`: two identical ingests started together;
- `full-disk`: the store on a 256 MiB tmpfs, filled (4 MiB left) once a random number of points is written;
  `query` and `collections info` on the full disk; then room again and the same command (root only);
- `other-model`: an ingest killed at a random point, resumed with another model of the same dim, then
  with its own.
Timings are not the point; the machine's load average is recorded all the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from _results import write_results  # noqa: E402

from exporters import ExportConfig, export_bundle  # noqa: E402
from gcl_vectordb.data import open_dataset  # noqa: E402
from gcl_vectordb.data.synth import SynthConfig, synthesize  # noqa: E402
from gcl_vectordb.encoders import load_encoder  # noqa: E402
from gcl_vectordb.encoders.models import create_clip_model  # noqa: E402
from gcl_vectordb.store import open_store  # noqa: E402
from tests.ingest_fixtures import ingest_args as collection_ingest_args  # noqa: E402
from tests.ingest_fixtures import ingest_harness, top10  # noqa: E402

PRODUCTS = 600
TRIALS = 4
LEFT = 4 << 20
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@dataclass
class Setup:
    work: Path
    data: Path
    bundle: Path
    other_model: str
    reference: Path
    harness: Path
    queries: list[np.ndarray]
    points: int


@dataclass
class Trial:
    """One injection: the processes it ran (exit codes) and what the collection holds afterwards."""

    fault: str
    detail: str
    exits: list[int] = field(default_factory=list)
    refusals: int = 0  # one clean line naming the holder, the model or the missing space
    holder_named: int = 0  # answers (exit 0) that reported a held collection's holder instead of its size
    crashes: list[str] = field(default_factory=list)
    outcome: dict = field(default_factory=dict)

    def run(self, command: list[str], *, expect_refusal: str | None = None) -> subprocess.CompletedProcess:
        return self.record(subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600),
                           expect_refusal)

    def record(self, result: subprocess.CompletedProcess, expect_refusal: str | None = None,
               killed: bool = False) -> subprocess.CompletedProcess:
        self.exits.append(result.returncode)
        lines = [line for line in result.stderr.splitlines() if line.strip() and "━" not in line]
        if killed and result.returncode == -signal.SIGKILL:
            return result
        if result.returncode == 0 and "in use by pid" in result.stdout:
            self.holder_named += 1
        if result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr \
                and (expect_refusal is None or expect_refusal in lines[0]):
            self.refusals += 1
        elif result.returncode != 0 or "Traceback" in result.stderr:
            self.crashes.append(f"exit {result.returncode}: {(lines or [''])[-1][:200]}")
        return result


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gcl_vectordb", *args]


def ingest_args(setup: Setup, store: Path, model: str | None = None) -> list[str]:
    return collection_ingest_args(setup.data, model or setup.bundle, store, batch_size=16, workers=1)


def harness(setup: Setup, action: str, threshold: int, args: list[str]) -> list[str]:
    return [sys.executable, str(setup.harness), action, str(threshold), *args]


# ---------------------------------------------------------------- comparing with the reference


def vectors(store: Path, ids: list[str]) -> dict[str, dict[str, np.ndarray]]:
    with open_store(store) as opened:
        return {p.product_id: dict(p.vectors) for p in opened.retrieve("gs", ids, with_vectors=True)}


def compare(setup: Setup, store: Path) -> dict:
    """What the collection lost or gained against the reference, and whether it searches the same."""
    status = subprocess.run(cli("collections", "info", "gs", "--qdrant", str(store), "--json"), env=ENV,
                            capture_output=True, text=True, timeout=300)
    if status.returncode != 0:
        return {"openable": False, "error": status.stderr.strip()[-300:]}
    ids = [p.product_id for c in (1, 2) for b in open_dataset(setup.data).iter_products(c, check_images=False)
           for p in b]
    want, got = vectors(setup.reference, ids), vectors(store, ids)
    common = set(want) & set(got)
    delta = max((float(np.max(np.abs(want[p][n] - got[p][n]))) for p in common for n in want[p]), default=0.0)
    return {"openable": True, "status": json.loads(status.stdout)["status"],
            "points": len(got), "missing": len(set(want) - set(got)), "extra": len(set(got) - set(want)),
            "max_vector_delta": delta, "top10_identical": top10(store, setup.queries) == top10(setup.reference,
                                                                                            setup.queries)}


# ---------------------------------------------------------------- the faults


def sigkill(setup: Setup, store: Path, rng: random.Random) -> Trial:
    k = rng.randrange(16, setup.points - 16)
    trial = Trial("sigkill", f"SIGKILL after {k} points")
    trial.record(subprocess.run(harness(setup, str(int(signal.SIGKILL)), k, ingest_args(setup, store)), env=ENV,
                                capture_output=True, text=True, timeout=600), killed=True)
    trial.run(cli("ingest", *ingest_args(setup, store)))
    return trial


def alongside(command: list[str], loops: int) -> Callable[[Setup, Path, random.Random], Trial]:
    """A fault: `loops` loops of `command` (with --qdrant STORE) while an ingest runs."""
    def fault(setup: Setup, store: Path, rng: random.Random) -> Trial:
        trial = Trial(f"{command[0]}-loop" if command[0] == "query" else "list-loop",
                      f"{loops} loop(s) of `gcl-vdb {' '.join(command)}` during the ingest")
        ingest = subprocess.Popen(cli("ingest", *ingest_args(setup, store)), env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        lock = threading.Lock()

        def loop() -> None:
            while ingest.poll() is None:
                result = subprocess.run(cli(*command, "--qdrant", str(store)), env=ENV, capture_output=True,
                                        text=True, timeout=300)
                with lock:
                    if result.returncode == 1 and "not found" in result.stderr:  # before the ingest created it
                        continue
                    trial.record(result, expect_refusal="is in use by pid")
        threads = [threading.Thread(target=loop) for _ in range(loops)]
        for thread in threads:
            thread.start()
        out, err = ingest.communicate(timeout=900)
        for thread in threads:
            thread.join()
        trial.record(subprocess.CompletedProcess(ingest.args, ingest.returncode, out, err))
        return trial
    return fault


def two_ingests(setup: Setup, store: Path, rng: random.Random) -> Trial:
    trial = Trial("two-ingests", "two identical ingests started together")
    runs = [subprocess.Popen(cli("ingest", *ingest_args(setup, store)), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=900)
        trial.record(subprocess.CompletedProcess(run.args, run.returncode, out, err), expect_refusal="is in use by pid")
    if 0 not in trial.exits:
        trial.run(cli("ingest", *ingest_args(setup, store)))
    return trial


def full_disk(setup: Setup, store: Path, rng: random.Random) -> Trial:
    k = rng.randrange(16, setup.points - 16)
    trial = Trial("full-disk", f"disk full (4 MiB left) after {k} points")
    disk = store.parent / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        trial.outcome = {"skipped": f"cannot mount a tmpfs: {mounted.stderr.strip() or 'not root'}"}
        return trial
    try:
        on_disk, filler = disk / "store", disk / "filler"
        trial.run(harness(setup, f"fill:{filler}:{LEFT}", k, ingest_args(setup, on_disk)),
                  expect_refusal="not enough free disk space")
        trial.run(cli("query", "red dress", "--collection", "gs", "--qdrant", str(on_disk)),
                  expect_refusal="not enough free disk space")
        trial.run(cli("collections", "info", "gs", "--qdrant", str(on_disk)))
        filler.unlink()
        trial.run(cli("ingest", *ingest_args(setup, on_disk)))
        shutil.copytree(on_disk, store)  # compared off the tmpfs, which goes now
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)
    return trial


def other_model(setup: Setup, store: Path, rng: random.Random) -> Trial:
    k = rng.randrange(16, setup.points - 16)
    trial = Trial("other-model", f"killed after {k} points, resumed with another model of the same dim")
    trial.record(subprocess.run(harness(setup, str(int(signal.SIGKILL)), k, ingest_args(setup, store)), env=ENV,
                                capture_output=True, text=True, timeout=600), killed=True)
    trial.run(cli("ingest", *ingest_args(setup, store, setup.other_model)), expect_refusal="has other weights")
    trial.run(cli("query", "red dress", "--collection", "gs", "--qdrant", str(store)))
    trial.run(cli("ingest", *ingest_args(setup, store)))
    return trial


FAULTS: dict[str, Callable[[Setup, Path, random.Random], Trial]] = {
    "sigkill": sigkill,
    "query-loop": alongside(["query", "red dress", "--collection", "gs"], loops=2),
    "list-loop": alongside(["collections", "list", "--json"], loops=1),
    "two-ingests": two_ingests,
    "full-disk": full_disk,
    "other-model": other_model,
}


# ---------------------------------------------------------------- setup, report


def prepare(work: Path) -> Setup:
    data = work / "data"
    synthesize(SynthConfig(out=data, products=PRODUCTS, queries=40, image_size=32, seed=3))
    bundle = work / "gcl-micro"
    export_bundle(ExportConfig(out=bundle, model_ref="gcl-micro"))
    generator = torch.Generator().manual_seed(5)
    state = {name: (t + 0.05 * torch.randn(t.shape, generator=generator) if t.is_floating_point() else t).contiguous()
             for name, t in create_clip_model("gcl-micro").model.state_dict().items()}
    save_file(state, str(work / "other.safetensors"))
    setup = Setup(work, data, bundle, f"gcl-micro:{work / 'other.safetensors'}", work / "reference",
                  ingest_harness(work), [], 0)
    subprocess.run(cli("ingest", *ingest_args(setup, setup.reference)), env=ENV, check=True, capture_output=True)
    dataset = open_dataset(data)
    texts = [*list(dataset.queries("in-domain").values())[:6], *list(dataset.queries("novel-doc").values())[:6]]
    setup.queries = list(load_encoder(str(bundle)).encode_texts(texts))
    with open_store(setup.reference) as store:
        setup.points = store.count("gs")
    return setup


def lost(trial: Trial) -> str:
    o = trial.outcome
    if "skipped" in o:
        return "skipped"
    if not o.get("openable"):
        return "collection unopenable"
    problems = [f"{o['missing']} points missing" if o["missing"] else "", f"{o['extra']} extra" if o["extra"] else "",
                "vectors differ" if o["max_vector_delta"] > 1e-6 else "",
                "top-10 differ" if not o["top10_identical"] else "",
                f"status {o['status']!r}" if o["status"] != "complete" else ""]
    return ", ".join(p for p in problems if p) or "nothing"


def markdown(result: dict) -> str:
    lines = [f"# Reliability: faults injected, and what was lost ({result['machine']})", "",
             f"{result['trials']} trials per fault on {result['products']} products ({result['points']} points); "
             f"load average before / after: {result['load_before']} / {result['load_after']}.", "",
             "| fault | trials | processes (exit codes) | clean refusals | holder named | crashes | lost |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in result["faults"].items():
        exits: dict[int, int] = {}
        for row in rows:
            for code in row["exits"]:
                exits[code] = exits.get(code, 0) + 1
        codes = ", ".join(f"{n}× {code}" for code, n in sorted(exits.items()))
        outcome = "; ".join(sorted({row["lost"] for row in rows}))
        lines.append(f"| {name}: {rows[0]['detail'] if len(rows) == 1 else FAULT_TEXT[name]} | {len(rows)} | "
                     f"{codes} | {sum(r['refusals'] for r in rows)} | {sum(r['holder_named'] for r in rows)} | "
                     f"{sum(len(r['crashes']) for r in rows)} | "
                     f"{outcome} |")
    lines += ["", "Exit −9: the SIGKILL the fault sends; 1: a one-line refusal (in use by pid …, not enough free "
              "disk space …, model … has other weights …); \"holder named\": `collections list` answers (exit 0) "
              "that showed who held the collection instead of opening it. A crash is a traceback, a signal or "
              "any other exit. \"lost\" compares each final collection with an undisturbed ingest: points, "
              "vectors, top-10 of 12 queries (fused and rrf, ties at the 10th place aside), ingest status.", ""]
    return "\n".join(lines)


FAULT_TEXT = {
    "sigkill": "SIGKILL at a random point, then the same command",
    "query-loop": "2 loops of `query` during an ingest",
    "list-loop": "a loop of `collections list` during an ingest",
    "two-ingests": "two ingests started together",
    "full-disk": "disk full (4 MiB left) at a random point; `query`, `collections info`; room again, same command",
    "other-model": "killed at a random point, resumed with another model of the same dim, then with its own",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one trial per fault")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ", ".join(FAULTS))
    args = parser.parse_args()
    trials = 1 if args.quick else TRIALS
    rng = random.Random(12)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gcl-vdb-reliability-") as tmp:
        setup = prepare(Path(tmp))
        results: dict[str, list[dict]] = {}
        for name in args.faults.split(","):
            for index in range(trials):
                store = Path(tmp) / f"{name}-{index}" / "store"
                store.parent.mkdir()
                trial = FAULTS[name](setup, store, rng)
                if not trial.outcome:
                    trial.outcome = compare(setup, store)
                row = {"detail": trial.detail, "exits": trial.exits, "refusals": trial.refusals,
                       "holder_named": trial.holder_named, "crashes": trial.crashes, "outcome": trial.outcome,
                       "lost": lost(trial)}
                results.setdefault(name, []).append(row)
                print(f"{name} #{index + 1}: {trial.detail}; exits {trial.exits}; lost: {row['lost']}"
                      + (f"; crashes: {trial.crashes}" if trial.crashes else ""), flush=True)
                shutil.rmtree(store.parent, ignore_errors=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "products": PRODUCTS,
              "points": setup.points, "trials": trials, "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": round(time.perf_counter() - started, 1), "faults": results}
    write_results("reliability", result, markdown(result), full_size=not args.quick)


if __name__ == "__main__":
    main()
