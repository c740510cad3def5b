"""`gcl-vdb serve` under load: wrk against the demo collection vs the in-process `search_products` loop.

    python benchmarks/serve.py                      # the issue's run: 30 s per level (≈ 4 min + the demo)
    python benchmarks/serve.py --seconds 3 --store /tmp/demo/gcl-vdb-store   # a smoke run (.quick files)

The demo collection (`gs10m` in `gcl-vdb-store`, gcl-tiny embeddings of the synthetic catalogue) is built
with `gcl-vdb demo --work gcl-vdb-work` first when the store lacks it. Then, in one run:
1. the batching gain: the collection's ONNX text tower on batches of b queries vs b single calls, and
   `search_products_batch` (embed + search) vs `search_products` one query at a time;
2. the baseline: the sequential in-process `search_products` loop over the dataset's query texts
   (measured before and after the server runs; the ratios use their mean);
3. the server (`python -m gcl_vectordb serve`, default settings) under Debian's `wrk` (1 thread, POST
   /search with the same query texts, limit 10, 10 s time-out) at concurrency 1, 8, 32 and 128:
   requests/s, p50 / p99, errors, time-outs, 503s and the mean embedding batch (from /metrics).
Goals: no errors or time-outs at any level; 503s only beyond the queue bound; requests/s at 32 ≥ 1.5×
the loop; p99 at 8 ≤ 4× the p50 at 1. Writes benchmarks/results/serve.{json,md} (`.quick` for shorter
levels: a smoke run never replaces the quoted figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._results import write_results  # noqa: E402
from gcl_vectordb.search import TextQuery, search_products, search_products_batch  # noqa: E402
from gcl_vectordb.store import open_store  # noqa: E402

LEVELS = (1, 8, 32, 128)
FULL_SECONDS = 30
GOAL_RATIO, GOAL_TAIL = 1.5, 4.0
FALLBACK_QUERIES = ("red summer dress", "striped shirt", "leather bag", "blue denim jacket")
WRK_SCRIPT = """
local bodies = { %(bodies)s }
local i, threads = 0, {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function setup(thread) table.insert(threads, thread) end
function init(args) n503, nother, seen = 0, 0, 0 end
function request()
  i = i + 1
  return wrk.format(nil, "/search", nil, bodies[(i %% #bodies) + 1])
end
function response(status, headers, body)
  if status == 503 then n503 = n503 + 1 elseif status ~= 200 then nother = nother + 1 end
end
function done(summary, latency, requests)
  local s503, sother = 0, 0
  for _, t in ipairs(threads) do s503 = s503 + t:get("n503"); sother = sother + t:get("nother") end
  io.write(string.format('WRK {"requests": %%d, "seconds": %%f, "p50_ms": %%f, "p99_ms": %%f, "max_ms": %%f, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "timeouts": %%d, "status_503": %%d, "status_other": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    s503, sother))
end
"""


def demo_collection(store: Path, collection: str, work: Path) -> None:
    """Build the demo collection with `gcl-vdb demo` unless the store already holds it."""
    if (store / collection / "collection.json").is_file():
        return
    print(f"building the demo collection in {store} (gcl-vdb demo, a few minutes) …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "gcl_vectordb", "demo", "--work", str(work), "--qdrant", str(store),
                    "--collection", collection], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def query_texts(store: Path, collection: str) -> list[str]:
    """The distinct query texts of the collection's dataset (every split), else a few fixed ones."""
    from gcl_vectordb.data import open_dataset

    with open_store(store) as handle:
        root = handle.get_record(collection).dataset_root
    if not root or not Path(root).is_dir():
        return list(FALLBACK_QUERIES)
    dataset = open_dataset(root)
    return sorted({text for split in dataset.splits for text in dataset.queries(split).values()})


def batching_gain(store: Path, collection: str, texts: list[str], rounds: int = 5) -> dict:
    """ms per query: the text tower on batches of b vs one text a call; embed + search likewise."""
    from gcl_vectordb.search import cached_encoder

    sizes = (1, 4, 8, 16, 32)
    embed: dict[int, list[float]] = {b: [] for b in sizes}
    search: dict[int, list[float]] = {b: [] for b in sizes}
    with open_store(store) as handle:
        encoder = cached_encoder(handle.get_record(collection).model_ref)
        sample = [texts[i % len(texts)] for i in range(64)]
        for _ in range(rounds):  # interleaved, so that a noisy moment hits every size alike
            for b in sizes:
                embed[b].append(_per_query(lambda chunk: encoder.encode_texts(chunk), sample, b))
                search[b].append(_per_query(lambda chunk: search_products_batch(
                    handle, collection, [TextQuery(t, limit=10) for t in chunk], encoder=encoder), sample, b))
    median = {name: {b: statistics.median(v) for b, v in values.items()} for name, values in
              (("embed", embed), ("search", search))}
    return {"batch_sizes": list(sizes), "embed_ms_per_query": median["embed"],
            "search_products_ms_per_query": median["search"], "texts": len(sample), "rounds": rounds}


def _per_query(run, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        run(texts[i:i + batch])
    return (time.perf_counter() - started) / len(texts) * 1000


def baseline_loop(store: Path, collection: str, texts: list[str], seconds: float) -> dict:
    """The sequential in-process `search_products` loop for `seconds`: queries/s, p50 / p99 (ms)."""
    times = []
    with open_store(store) as handle:
        for text in texts[:20]:
            search_products(handle, collection, text)  # model load and warm caches
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            one = time.perf_counter()
            search_products(handle, collection, texts[len(times) % len(texts)], limit=10)
            times.append(time.perf_counter() - one)
        elapsed = time.perf_counter() - started
    ms = sorted(t * 1000 for t in times)
    return {"queries": len(ms), "seconds": elapsed, "qps": len(ms) / elapsed, "p50_ms": _percentile(ms, 50),
            "p99_ms": _percentile(ms, 99)}


def _percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Server:
    """`python -m gcl_vectordb serve --json --port 0` on the collection, with its default settings."""

    def __init__(self, store: Path, collection: str, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gcl_vectordb", "serve", "--json", "--port", "0", "--collection", collection,
             "--qdrant", str(store)], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            self.url = _first_json(self.process.stdout)["url"]
            self.settings = _get(f"{self.url}/readyz")
        except BaseException:
            self.stop()
            raise

    def metrics(self) -> dict[str, float]:
        text = _get(f"{self.url}/metrics", raw=True)
        wanted = ("gcl_vdb_embedding_batch_size_sum", "gcl_vdb_embedding_batch_size_count", "gcl_vdb_rejected_total")
        return {name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1)) for name in wanted}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(120)
        self.log.close()
        return code


def _first_json(stream) -> dict:
    """The first JSON document of a text stream (`--json` prints it indented, over several lines)."""
    text = ""
    for line in stream:
        text += line
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            continue
    raise SystemExit("the server exited before it listened (see its log)")


def _get(url: str, raw: bool = False):
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read().decode()
    return body if raw else json.loads(body)


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    run = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                          url], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.split("WRK ", 1)[1].splitlines()[0])


def lua_script(texts: list[str], folder: Path) -> Path:
    bodies = ", ".join(f"[==[{json.dumps({'query': t, 'limit': 10})}]==]" for t in texts)
    path = folder / "search.lua"
    path.write_text(WRK_SCRIPT % {"bodies": bodies})
    return path


def load_levels(server: Server, script: Path, levels: tuple[int, ...], seconds: int) -> list[dict]:
    wrk(server.url, script, 8, min(3, seconds))  # warm-up, not recorded
    rows = []
    for connections in levels:
        before = server.metrics()
        result = wrk(server.url, script, connections, seconds)
        after = server.metrics()
        batches = after["gcl_vdb_embedding_batch_size_count"] - before["gcl_vdb_embedding_batch_size_count"]
        queries = after["gcl_vdb_embedding_batch_size_sum"] - before["gcl_vdb_embedding_batch_size_sum"]
        rows.append({"concurrency": connections, **result, "rps": result["requests"] / result["seconds"],
                     "errors": result["connect"] + result["read"] + result["write"] + result["status_other"],
                     "mean_batch": queries / batches if batches else 0.0})
        print(f"c={connections}: {rows[-1]['rps']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms, 503s {result['status_503']}", file=sys.stderr)
    return rows


def goals(levels: list[dict], loop_qps: float, queue_size: int) -> dict:
    by = {row["concurrency"]: row for row in levels}
    ratio = by[32]["rps"] / loop_qps if 32 in by else None
    tail = by[8]["p99_ms"] / by[1]["p50_ms"] if 8 in by and 1 in by else None
    return {
        "no_errors_or_timeouts": all(r["errors"] == 0 and r["timeouts"] == 0 for r in levels),
        "503_only_beyond_queue": all(r["status_503"] == 0 for r in levels if r["concurrency"] <= queue_size),
        "rps_at_32_over_loop": ratio, "rps_at_32_goal_met": ratio is not None and ratio >= GOAL_RATIO,
        "p99_at_8_over_p50_at_1": tail, "tail_goal_met": tail is not None and tail <= GOAL_TAIL,
    }


def markdown(report: dict) -> str:
    g, loops = report["goals"], report["baseline"]
    mark = {True: "✔", False: "✘"}
    lines = [
        "# `gcl-vdb serve` under load (wrk) vs the in-process search loop", "",
        f"{report['note']}", "",
        f"Collection `{report['collection']}` ({report['server']['products']:,} products, model "
        f"`{Path(report['server']['model']).name}`), {len(report['queries'])} distinct query texts, limit 10; "
        f"server defaults (max batch {report['server_settings']['max_batch']}, queue "
        f"{report['server_settings']['queue_size']}); wrk 1 thread, {report['seconds']:g} s per level, 10 s "
        f"time-out; {report['machine']['cpus']} CPUs.", "",
        "| concurrency | requests/s | × loop | p50 (ms) | p99 (ms) | errors | time-outs | 503s | mean batch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["levels"]:
        lines.append(f"| {row['concurrency']} | {row['rps']:,.1f} | {row['rps'] / report['loop_qps']:.2f} | "
                     f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} | {row['timeouts']} | "
                     f"{row['status_503']} | {row['mean_batch']:.1f} |")
    lines += [
        "", f"Baseline, the sequential in-process `search_products` loop: {loops['before']['qps']:,.1f} q/s before "
        f"and {loops['after']['qps']:,.1f} q/s after the server ran (mean {report['loop_qps']:,.1f}); p50 "
        f"{loops['before']['p50_ms']:.2f} ms, p99 {loops['before']['p99_ms']:.2f} ms.", "",
        "| goal | measured | |", "|---|---|---|",
        f"| 0 errors and 0 time-outs at every level | {sum(r['errors'] + r['timeouts'] for r in report['levels'])} "
        f"| {mark[g['no_errors_or_timeouts']]} |",
        f"| 503s only beyond the queue bound ({report['server_settings']['queue_size']}) | "
        f"{sum(r['status_503'] for r in report['levels'])} at ≤ {max(LEVELS)} connections | "
        f"{mark[g['503_only_beyond_queue']]} |",
        f"| requests/s at 32 ≥ {GOAL_RATIO}× the loop | {_fmt(g['rps_at_32_over_loop'])}× | "
        f"{mark[g['rps_at_32_goal_met']]} |",
        f"| p99 at 8 ≤ {GOAL_TAIL:g}× the p50 at 1 | {_fmt(g['p99_at_8_over_p50_at_1'])}× | {mark[g['tail_goal_met']]} |",
        "", "Batching gain, ms per query (median of interleaved rounds; b queries per call):", "",
        "| batch | " + " | ".join(str(b) for b in report["batching"]["batch_sizes"]) + " |",
        "|---|" + "---:|" * len(report["batching"]["batch_sizes"]),
    ]
    for name, key in (("text tower (`encode_texts`)", "embed_ms_per_query"),
                      ("embed + search (`search_products_batch`)", "search_products_ms_per_query")):
        values = report["batching"][key]
        lines.append(f"| {name} | " + " | ".join(f"{values[b]:.2f}" for b in report["batching"]["batch_sizes"]) + " |")
    lines += ["", f"Server stopped by SIGTERM: exit status {report['server_exit']}.", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / "gcl-vdb-store")
    parser.add_argument("--collection", default="gs10m")
    parser.add_argument("--work", type=Path, default=ROOT / "gcl-vdb-work", help="the demo's work folder")
    parser.add_argument("--seconds", type=int, default=FULL_SECONDS, help="seconds per level (and per loop)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    demo_collection(args.store, args.collection, args.work)
    texts = query_texts(args.store, args.collection)
    batching = batching_gain(args.store, args.collection, texts)
    before = baseline_loop(args.store, args.collection, texts, args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        server = Server(args.store, args.collection, Path(folder) / "server.log")
        try:
            levels = load_levels(server, lua_script(texts, Path(folder)), tuple(args.levels), args.seconds)
        finally:
            exit_code = server.stop()
    after = baseline_loop(args.store, args.collection, texts, args.seconds)

    loop_qps = (before["qps"] + after["qps"]) / 2
    full = args.seconds >= FULL_SECONDS and set(LEVELS) <= set(args.levels)
    report = {
        "note": "" if full else f"SMOKE RUN ({args.seconds:g} s per level on a busy machine): checks that the "
                                "script works; not the figures the README quotes.",
        "collection": args.collection, "queries": texts, "seconds": args.seconds, "levels": levels,
        "baseline": {"before": before, "after": after}, "loop_qps": loop_qps, "batching": batching,
        "server": server.settings, "server_exit": exit_code,
        "server_settings": server.settings["batching"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    report["goals"] = goals(levels, loop_qps, server.settings["batching"]["queue_size"])
    write_results("serve", report, markdown(report), full_size=full)


if __name__ == "__main__":
    main()
