"""Streaming a `corpus_N.json`: ijson (C backend) against the hand-written `raw_decode` streamer.

    python benchmarks/json_reader.py            # a 1M-entry corpus in the official shape (~155 MB)
    python benchmarks/json_reader.py --quick    # 20k entries: proves the script works

Modes, each in a fresh interpreter, `--repeats` times (the table shows the median wall and CPU seconds
and the largest peak RSS over the RSS after imports; the speed-up is by CPU seconds, which other
processes on a shared machine disturb less than wall time):
- handwritten: the streamer gcl-vdb used before ijson (`json.JSONDecoder.raw_decode` over a rolling
  1 MiB text buffer), kept below as the baseline;
- ijson: `ijson.kvitems(file, "")` with the backend ijson picks (yajl2_c when its C extension is built);
- reader: what `gcl_vectordb.data.jsonstream.iter_json_object` does now (ijson plus the reader's checks);
- json.load: the whole file at once (memory reference).
Every mode decodes every entry into Python objects and counts them.
Writes benchmarks/results/json_reader.{json,md} (`.quick.` for other sizes, not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _results import write_results  # noqa: E402

from gcl_vectordb.data.synth.catalogue import make_catalogue  # noqa: E402
from gcl_vectordb.data.synth.writers import image_local  # noqa: E402

MODES = ("handwritten", "ijson", "reader", "json.load")

# The baseline: gcl-vdb's streamer before it moved to ijson (gcl_vectordb/data/jsonstream.py at that time).
HANDWRITTEN = r'''
import json, re
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()

class Buffer:
    def __init__(self, handle, chunk_chars):
        self.handle, self.chunk_chars, self.text, self.pos, self.eof = handle, chunk_chars, "", 0, False

    def refill(self):
        if self.eof:
            return False
        chunk = self.handle.read(self.chunk_chars)
        self.text, self.pos, self.eof = self.text[self.pos:] + chunk, 0, not chunk
        return bool(chunk)

    def peek(self):
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.refill():
                break
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def decode(self):
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.refill():
                    continue
                raise
            if end == len(self.text) and not self.eof and self.refill():
                continue
            self.pos = end
            return value

def entries(path, chunk_chars=1 << 20):
    with open(path, encoding="utf-8") as handle:
        buffer = Buffer(handle, chunk_chars)
        assert buffer.peek() == "{"
        buffer.pos += 1
        if buffer.peek() == "}":
            return
        while True:
            key = buffer.decode()
            assert buffer.peek() == ":"
            buffer.pos += 1
            yield key, buffer.decode()
            separator = buffer.peek()
            buffer.pos += 1
            if separator == "}":
                return
'''

CHILD = r"""
import json, sys, time
mode, path = sys.argv[1], sys.argv[2]
if mode == "handwritten":
    namespace = {}
    exec(sys.argv[3], namespace)
    entries = namespace["entries"]
elif mode == "ijson":
    import ijson
    def entries(path):
        with open(path, "rb") as handle:
            yield from ijson.kvitems(handle, "", use_float=True)
elif mode == "reader":
    from pathlib import Path
    from gcl_vectordb.data.jsonstream import iter_json_object
    entries = lambda path: iter_json_object(Path(path))
else:
    entries = lambda path: json.load(open(path, encoding="utf-8")).items()

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

with open("/proc/self/clear_refs", "w") as handle:  # reset the peak (VmHWM) so that imports do not count
    handle.write("5")
base = status_mb("VmRSS")
started, cpu_started = time.perf_counter(), time.process_time()
count = sum(1 for _key, value in entries(path) if value["title"])
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
backend = sys.modules["ijson"].backend if "ijson" in sys.modules else None
print(json.dumps({"entries": count, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_over_imports_mb": status_mb("VmHWM") - base,
                  "ijson_backend": backend}))
"""


def write_corpus(path: Path, products: int) -> None:
    """`corpus_1.json` in the official shape: `{product_id: {"title": ..., "image_local": ...}, ...}`."""
    catalogue = make_catalogue(products, seed=0)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("{")
        for i, product_id in enumerate(catalogue.product_ids):
            entry = {"title": catalogue.titles[i], "image_local": image_local(i, product_id)}
            handle.write(("" if i == 0 else ", ") + f"{json.dumps(product_id)}: {json.dumps(entry)}")
        handle.write("}")


def _label(mode: str, figures: dict) -> str:
    return f"{mode} ({figures['ijson_backend']})" if figures["ijson_backend"] else mode


def measure(mode: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), HANDWRITTEN], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k entries instead of 1M")
    parser.add_argument("--size", type=int, default=None, help="entries (overrides the default)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (median seconds)")
    args = parser.parse_args()
    size = args.size or (20_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus_1.json"
        started = time.perf_counter()
        write_corpus(path, size)
        generated = time.perf_counter() - started
        file_mb = path.stat().st_size / 2**20
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):  # interleaved, so that a noisy minute hits every mode alike
            for mode in MODES:
                runs[mode].append(measure(mode, path))
    summary = {}
    for mode, results in runs.items():
        assert all(r["entries"] == size for r in results), (mode, results)
        summary[mode] = {"seconds_median": round(statistics.median(r["seconds"] for r in results), 2),
                         "seconds_all": [round(r["seconds"], 2) for r in results],
                         "cpu_seconds_median": round(statistics.median(r["cpu_seconds"] for r in results), 2),
                         "peak_over_imports_mb": round(max(r["peak_over_imports_mb"] for r in results), 1),
                         "ijson_backend": results[0]["ijson_backend"]}
    baseline = summary["handwritten"]["cpu_seconds_median"]
    for figures in summary.values():
        figures["speedup_over_handwritten"] = round(baseline / figures["cpu_seconds_median"], 2)
    result = {"benchmark": "json_reader", "entries": size, "file_mb": round(file_mb, 1), "repeats": args.repeats,
              "generate_seconds": round(generated, 1), "machine": platform.machine(),
              "python": platform.python_version(), "modes": summary}
    write_results("json_reader", result, full_size=size == 1_000_000, markdown=(
        f"# streaming corpus_1.json: {size:,} entries, {file_mb:.1f} MB, official shape\n\n"
        f"Each mode in a fresh interpreter, {args.repeats} interleaved runs; seconds: median; speed-up: by CPU "
        "seconds; memory: largest peak RSS over the RSS after imports.\n\n"
        "| mode | wall s | CPU s | speed-up over handwritten | peak RSS over imports (MB) |\n"
        "|---|---:|---:|---:|---:|\n"
        + "".join(f"| {_label(mode, f)} | {f['seconds_median']:.2f} | {f['cpu_seconds_median']:.2f} "
                  f"| {f['speedup_over_handwritten']:.2f}× | {f['peak_over_imports_mb']:.0f} |\n"
                  for mode, f in summary.items())
    ))


if __name__ == "__main__":
    main()
