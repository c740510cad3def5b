"""The report of benchmarks/scale.py: growth exponents between sizes, the 10M sizing, the markdown table."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

GOALS = {"load_ratio": 0.85, "rss_int8_over_fp32": 0.35, "int8_recall": 0.95, "int8_p50_ms": 5.0,
         "load_exponent": 1.1, "hnsw_p50_exponent": 0.3}
STORAGES = ("fp32-ram", "int8-disk", "float16")
HNSW_EF = 128  # the ef of the headline figures
EF_SWEEP = (64, 128, 256, 512, 1024)
TARGET = 10_000_000


def own_mode(storage: str) -> str:
    """The approximate search a collection of this storage serves with."""
    return "hnsw+int8" if storage == "int8-disk" else "hnsw"


def serving_mb(run: dict[str, Any], storage: str, part: str = "rss") -> float:
    """Resident MB (`rss`, `anon` or `file`) of a process serving the collection with its own HNSW mode."""
    return run["serve"]["memory_mb"]["after"][own_mode(storage)][part]


def operating_point(run: dict[str, Any], mode: str, recall: float) -> tuple[int, dict[str, float]] | None:
    """The smallest ef of the sweep whose recall@10 reaches `recall`, with its figures (None: none does)."""
    by_ef = run["serve"]["queries"].get(mode, {})
    for ef in EF_SWEEP:
        values = by_ef.get(str(ef))
        if values is not None and values["recall@10"] >= recall:
            return ef, values
    return None


def headline(run: dict[str, Any], mode: str) -> dict[str, float] | None:
    found = run["serve"]["queries"].get(mode)
    return None if found is None else found.get("exact" if mode == "exact" else str(HNSW_EF))


def figures(run: dict[str, Any], size: int, storage: str) -> dict[str, float]:
    """The figures whose growth is fitted: seconds, MB, ms."""
    found = {"load_s": size / run["load"]["points_per_s"], "index_s": run["index_s"],
             "load_peak_rss_mb": run["memory_mb"]["peak_rss"], "serving_rss_mb": serving_mb(run, storage),
             "disk_mb": run["disk_bytes"] / 2**20, "evaluate_s_per_query": run["serve"]["evaluate"]["s_per_query"]}
    for mode in ("exact", "hnsw", "hnsw+int8"):
        if (values := headline(run, mode)) is not None:
            found[f"{mode}_p50_ms"] = values["p50_ms"]
    return found


def paired_figures(results: dict[str, Any], low: int, high: int) -> Iterator[tuple[str, dict, dict]]:
    """(storage, figures at `low`, figures at `high`) for every storage measured at both sizes."""
    for storage in STORAGES:
        a = results["sizes"][str(low)]["storages"].get(storage)
        b = results["sizes"][str(high)]["storages"].get(storage)
        if a and b:
            yield storage, figures(a, low, storage), figures(b, high, storage)


def growth(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """b of f ∝ N^b between consecutive measured sizes, per storage and figure."""
    sizes = sorted(int(n) for n in results.get("sizes", {}))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for low, high in zip(sizes, sizes[1:], strict=False):
        for storage, fa, fb in paired_figures(results, low, high):
            out.setdefault(f"{low}->{high}", {})[storage] = {
                k: round(math.log(fb[k] / fa[k]) / math.log(high / low), 3)
                for k in fa if k in fb and fa[k] > 0 and fb[k] > 0}
    return out


def sizing(results: dict[str, Any]) -> dict[str, Any]:
    """10M products, from the two largest measured sizes: memory and disk as fixed + per-point (the slope
    between them), load at the largest size's rate (linear), the index time with its growth exponent.

    A 3-node server cluster with 6 shards (no replicas) puts 2 shards of 10M / 6 points on each node: per
    node the memory and disk of 3.3M points, its 2 shards indexed one after the other, the nodes loading in
    parallel, each at this machine's single-node rate (the client and the network not the limit)."""
    sizes = sorted(int(n) for n in results.get("sizes", {}))
    if len(sizes) < 2:
        return {}
    low, high = sizes[-2], sizes[-1]
    table = {}
    for storage, fa, fb in paired_figures(results, low, high):

        def linear(name: str, points: float, fa: dict = fa, fb: dict = fb) -> float:
            slope = (fb[name] - fa[name]) / (high - low)
            return fb[name] + slope * (points - high)

        def power(name: str, points: float, fa: dict = fa, fb: dict = fb) -> float:
            exponent = math.log(fb[name] / fa[name]) / math.log(high / low)
            return fb[name] * (points / high) ** exponent

        node = TARGET / 3
        table[storage] = {
            "embedded_1_node": {"ram_gb": linear("serving_rss_mb", TARGET) / 1024,
                                "load_ram_gb": linear("load_peak_rss_mb", TARGET) / 1024,
                                "disk_gb": linear("disk_mb", TARGET) / 1024,
                                "load_h": linear("load_s", TARGET) / 3600, "index_h": power("index_s", TARGET) / 3600},
            "cluster_3_nodes_6_shards": {"ram_gb_per_node": linear("serving_rss_mb", node) / 1024,
                                         "disk_gb_per_node": linear("disk_mb", node) / 1024,
                                         "load_h": linear("load_s", node) / 3600,
                                         "index_h": 2 * power("index_s", TARGET / 6) / 3600},
            "from": [low, high],
        }
    return table


def _cell(values: dict[str, float] | None) -> str:
    if values is None:
        return "—"
    return f"{values['p50_ms']:.2f} / {values['p99_ms']:.2f}, {values['recall@10']:.3f}, {values['ndcg@10']:.3f}"


def goal_checks(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(goal, what was measured, met? — None where the size it needs was not measured)."""
    sizes = results.get("sizes", {})
    checks: list[tuple[str, str, bool | None]] = []
    ratios = [(int(n), s, run["load_ratio"]) for n, entry in sizes.items() for s, run in entry["storages"].items()
              if "load_ratio" in run]
    if ratios:
        worst = min(r for _, _, r in ratios)
        checks.append((f"load from shards ≥ {GOALS['load_ratio']}× raw upsert, every size",
                       ", ".join(f"{n:,} {s} {r:.2f}" for n, s, r in sorted(ratios)), worst >= GOALS["load_ratio"]))
    big = sizes.get("1000000", {}).get("storages", {})
    if "fp32-ram" in big and "int8-disk" in big:
        ratio = serving_mb(big["int8-disk"], "int8-disk") / serving_mb(big["fp32-ram"], "fp32-ram")
        anon = serving_mb(big["int8-disk"], "int8-disk", "anon") / serving_mb(big["fp32-ram"], "fp32-ram", "anon")
        checks.append((f"serving RSS at 1M: int8-disk ≤ {GOALS['rss_int8_over_fp32']:.0%} of fp32-ram",
                       f"{ratio:.0%} (anonymous memory alone {anon:.0%})", ratio <= GOALS["rss_int8_over_fp32"]))
    else:
        checks.append(("serving RSS at 1M: int8-disk ≤ 35 % of fp32-ram", "1M not measured", None))
    if "int8-disk" in big:
        point = operating_point(big["int8-disk"], "hnsw+int8", GOALS["int8_recall"])
        text = (f"ef {point[0]}: R@10 {point[1]['recall@10']:.3f} at p50 {point[1]['p50_ms']:.2f} ms" if point
                else f"no ef up to {EF_SWEEP[-1]} reaches R@10 {GOALS['int8_recall']}")
        checks.append((f"HNSW+int8 at 1M: R@10 ≥ {GOALS['int8_recall']} at p50 ≤ {GOALS['int8_p50_ms']} ms", text,
                       point is not None and point[1]["p50_ms"] <= GOALS["int8_p50_ms"]))
    else:
        checks.append(("HNSW+int8 at 1M: R@10 ≥ 0.95 at p50 ≤ 5 ms", "1M not measured", None))
    span = results.get("growth", {}).get("100000->1000000", {})
    for figure, goal, label in (("load_s", GOALS["load_exponent"], "load time"),
                                ("hnsw_p50_ms", GOALS["hnsw_p50_exponent"], "HNSW p50")):
        values = {s: g[figure] for s, g in span.items() if figure in g}
        checks.append((f"growth 100k → 1M of {label}: exponent ≤ {goal}",
                       ", ".join(f"{s} {v:+.2f}" for s, v in values.items()) or "1M not measured",
                       all(v <= goal for v in values.values()) if values else None))
    return checks


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Scale: embedding shards loaded, indexed and searched at 10k–1M products (512-d)\n",
        f"Machine: {results['machine']}. Vectors: clustered embeddings (`benchmarks/scale_data.py`). HNSW on "
        "`fused` only (m 16, ef_construct as in each size's settings); queries one at a time with the corpus "
        "filter; R@10 and NDCG@10 against exact. Serving RSS: a fresh process, after the storage's own "
        "approximate search (HNSW+int8 for int8-disk, HNSW otherwise); its file-backed part is memory-mapped "
        "vector files the kernel may drop under pressure.\n",
        "| goal | measured | met |", "|---|---|---|"]
    for goal, measured, met in goal_checks(results):
        lines.append(f"| {goal} | {measured} | {'—' if met is None else '✔' if met else '✘'} |")
    lines += [
        "\n| N | storage | raw pts/s | load pts/s | load ÷ raw | index s | load process peak RSS MB (anon, file) "
        "| serving RSS MB: open → own search (anon + file) → exact → evaluate | disk MB | exact p50 / p99 ms "
        f"| HNSW ef {HNSW_EF}: p50 / p99 ms, R@10, NDCG@10 | HNSW+int8 ef {HNSW_EF} | evaluate s/query (NDCG@10) "
        "| load avg at start |",
        "|---:|---|---:|---:|---:|---:|---|---|---:|---|---|---|---|---|"]
    for size in sorted(int(n) for n in results.get("sizes", {})):
        for storage, run in results["sizes"][str(size)]["storages"].items():
            mem, serve = run["memory_mb"], run["serve"]
            after = serve["memory_mb"]["after"]
            raw = run.get("raw", {}).get("points_per_s")
            exact = headline(run, "exact")
            own = after[own_mode(storage)]
            lines.append(
                f"| {size:,} | {storage} | {f'{raw:,.0f}' if raw else '—'} | {run['load']['points_per_s']:,.0f} "
                f"| {run.get('load_ratio', '—')} | {run['index_s']:.1f} | {mem['peak_rss']:,.0f} "
                f"({mem['peak_anon']:,.0f}, {mem['peak_file']:,.0f}) | {after['open']['rss']:,.0f} → "
                f"{own['rss']:,.0f} ({own['anon']:,.0f} + {own['file']:,.0f}) → {after['exact']['rss']:,.0f} → "
                f"{after['evaluate']['rss']:,.0f} | {run['disk_bytes'] / 2**20:,.0f} "
                f"| {exact['p50_ms']:.1f} / {exact['p99_ms']:.1f} "
                f"| {_cell(headline(run, 'hnsw'))} | {_cell(headline(run, 'hnsw+int8'))} "
                f"| {serve['evaluate']['s_per_query']:.3f} ({serve['evaluate']['ndcg@10']:.2f}) "
                f"| {', '.join(f'{x:.1f}' for x in run['load_average'])} |")
    lines += ["\nHNSW ef sweep (p50 / p99 ms, R@10, NDCG@10):\n",
              "| N | storage | mode | " + " | ".join(f"ef {ef}" for ef in EF_SWEEP) + " |",
              "|---:|---|---|" + "---|" * len(EF_SWEEP)]
    for size in sorted(int(n) for n in results.get("sizes", {})):
        for storage, run in results["sizes"][str(size)]["storages"].items():
            for mode in ("hnsw", "hnsw+int8"):
                if mode in run["serve"]["queries"]:
                    by_ef = run["serve"]["queries"][mode]
                    lines.append(f"| {size:,} | {storage} | {mode} | "
                                 + " | ".join(_cell(by_ef.get(str(ef))) for ef in EF_SWEEP) + " |")
    lines.append("\nGrowth exponents b (f ∝ N^b) between consecutive sizes:\n")
    for span, by_storage in results.get("growth", {}).items():
        for storage, values in by_storage.items():
            lines.append(f"- {span.replace('->', ' → ')}, {storage}: "
                         + ", ".join(f"{k} {v:+.2f}" for k, v in values.items()))
    if results.get("sizing"):
        lines += ["\n10M products (memory and disk: fixed + per-point cost between the two largest sizes; load "
                  "linear; index with its growth exponent). Cluster: 3 nodes × 2 of 6 shards, nodes in parallel:\n",
                  "| storage | 1 embedded node: serving RAM GB | load-process RAM GB | disk GB | load h | index h "
                  "| cluster: RAM GB/node | disk GB/node | load h | index h |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for storage, row in results["sizing"].items():
            e, c = row["embedded_1_node"], row["cluster_3_nodes_6_shards"]
            lines.append(f"| {storage} | {e['ram_gb']:.1f} | {e['load_ram_gb']:.1f} | {e['disk_gb']:.1f} "
                         f"| {e['load_h']:.2f} | {e['index_h']:.2f} | {c['ram_gb_per_node']:.1f} "
                         f"| {c['disk_gb_per_node']:.1f} | {c['load_h']:.2f} | {c['index_h']:.2f} |")
    settings = {n: entry["settings"] for n, entry in results.get("sizes", {}).items()}
    lines.append(f"\nSettings per size: {settings}.")
    return "\n".join(lines) + "\n"
