"""Aggregation, table and chart of the GCL-vs-CLIP replication (`benchmarks/gcl_vs_clip.py`).

Pure functions over per-seed figures, so the arithmetic is tested on made-up numbers
(tests/test_gcl_vs_clip_report.py). A *run* is one arm trained and evaluated with one seed:

    {"arm": "gcl-linear", "seed": 0, "splits": {"in-domain": {"ndcg@10": 0.54, "err": 0.41, ...}, ...}}

Per split, arm and metric: mean, sample standard deviation (ddof = 1; 0 for one seed), min and max over
seeds. Each GCL arm is compared with the baseline arm seed by seed (same data, same initialisation, same
batches): the paired difference d_s = gcl_s − clip_s and the relative change r_s = d_s / clip_s, each
reported as mean ± std over seeds, and the sign count (seeds where GCL is higher / equal / lower).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

METRICS: tuple[str, ...] = ("ndcg@10", "err", "rbp@0.7", "rbp@0.8", "rbp@0.9", "map@1000", "mrr@1000")
METRIC_LABELS: dict[str, str] = {
    "ndcg@10": "NDCG@10", "err": "mERR", "rbp@0.7": "mRBP7", "rbp@0.8": "mRBP8", "rbp@0.9": "mRBP9",
    "map@1000": "MAP@1000", "mrr@1000": "MRR@1000",
}
BASELINE = "clip"
ARM_COLOURS: tuple[str, ...] = ("#8c8c8c", "#1f6fb4", "#e07b1a", "#2f9e44", "#9c36b5", "#c92a2a")


def summarize(values: Sequence[float]) -> dict[str, float]:
    """{"n", "mean", "std" (sample, ddof = 1; 0 for n = 1), "min", "max"} of one metric over seeds."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarize")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def paired(baseline: Sequence[float], treatment: Sequence[float]) -> dict[str, Any]:
    """Seed-by-seed comparison of `treatment` with `baseline` (same seed order).

    diff = summary of d_s = t_s − b_s; relative = summary of d_s / b_s (a fraction; None where some
    b_s = 0); wins / ties / losses = seeds with d_s > 0, = 0, < 0.
    """
    if len(baseline) != len(treatment) or not baseline:
        raise ValueError("paired figures need the same, non-zero number of seeds on both sides")
    diffs = [t - b for b, t in zip(baseline, treatment, strict=True)]
    relative = None if any(b == 0 for b in baseline) else summarize(
        [d / b for d, b in zip(diffs, baseline, strict=True)])
    return {
        "diff": summarize(diffs), "relative": relative,
        "wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
    }


def _grid(runs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[int], list[str]]:
    """Arms (first-seen order), seeds (sorted) and splits of `runs`; every arm must have every seed."""
    arms = list(dict.fromkeys(run["arm"] for run in runs))
    seeds = sorted({int(run["seed"]) for run in runs})
    splits = list(dict.fromkeys(split for run in runs for split in run["splits"]))
    have = {(run["arm"], int(run["seed"])) for run in runs}
    missing = [(arm, seed) for arm in arms for seed in seeds if (arm, seed) not in have]
    if missing:
        raise ValueError(f"runs missing for (arm, seed) {missing}")
    return arms, seeds, splits


def aggregate(runs: Sequence[Mapping[str, Any]], baseline: str = BASELINE,
              metrics: Sequence[str] = METRICS) -> dict[str, Any]:
    """{"arms", "seeds", "splits", "summary": {arm: {split: {metric: summarize}}},
    "comparison": {arm: {split: {metric: paired}}}} (comparison for every arm but `baseline`)."""
    arms, seeds, splits = _grid(runs)
    if baseline not in arms:
        raise ValueError(f"the baseline arm {baseline!r} has no runs")
    by_key = {(run["arm"], int(run["seed"])): run for run in runs}

    def series(arm: str, split: str, metric: str) -> list[float]:
        return [float(by_key[arm, seed]["splits"][split][metric]) for seed in seeds]

    summary = {arm: {split: {m: summarize(series(arm, split, m)) for m in metrics} for split in splits}
               for arm in arms}
    comparison = {
        arm: {split: {m: paired(series(baseline, split, m), series(arm, split, m)) for m in metrics}
              for split in splits}
        for arm in arms if arm != baseline
    }
    return {"arms": arms, "seeds": seeds, "splits": splits, "baseline": baseline,
            "summary": summary, "comparison": comparison}


def control_comparisons(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per shuffled control arm with its graded arm present: graded vs control, paired (NDCG@10, mERR,
    mRBP8) — what the grades add over weights of the same distribution that ignore relevance."""
    arms = dict.fromkeys(run["arm"] for run in runs)
    out = {}
    for control in arms:
        graded = control.replace("control-shuffled-", "gcl-", 1)
        if control.startswith("control-shuffled-") and graded in arms:
            subset = [run for run in runs if run["arm"] in (control, graded)]
            comparison = aggregate(subset, baseline=control, metrics=("ndcg@10", "err", "rbp@0.8"))["comparison"]
            out[graded] = {"control": control, "comparison": comparison[graded]}
    return out


def _pm(stats: Mapping[str, float], digits: int = 3, scale: float = 1.0, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(stats['mean'] * scale)} ± {stats['std'] * scale:.{digits}f}"


def markdown_table(result: Mapping[str, Any], metrics: Sequence[str] = METRICS) -> str:
    """One row per split, metric and arm: mean ± std [min–max]; for a GCL arm also the paired
    difference, the relative change (%) and the sign count against the baseline."""
    baseline = result["baseline"]
    n = len(result["seeds"])
    lines = [
        f"| split | metric | arm | mean ± std (n = {n}) | min – max | Δ vs {baseline} (paired) | relative | "
        "higher / equal / lower |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in result["splits"]:
        for metric in metrics:
            for arm in result["arms"]:
                stats = result["summary"][arm][split][metric]
                cells = [split, METRIC_LABELS.get(metric, metric), arm, _pm(stats),
                         f"{stats['min']:.3f} – {stats['max']:.3f}"]
                if arm == baseline:
                    cells += ["", "", ""]
                else:
                    comp = result["comparison"][arm][split][metric]
                    relative = comp["relative"]
                    cells += [_pm(comp["diff"], sign=True),
                              f"{_pm(relative, digits=1, scale=100, sign=True)} %" if relative else "n/a",
                              f"{comp['wins']} / {comp['ties']} / {comp['losses']}"]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def headline_table(result: Mapping[str, Any], metrics: Sequence[str] = ("ndcg@10", "err", "rbp@0.8")) -> str:
    """Compact: one row per split and arm, mean ± std of `metrics`, and each GCL arm's relative change."""
    header = ["split", "arm", *(METRIC_LABELS.get(m, m) for m in metrics),
              *(f"rel. Δ {METRIC_LABELS.get(m, m)}" for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for split in result["splits"]:
        for arm in result["arms"]:
            cells = [split, arm, *(_pm(result["summary"][arm][split][m]) for m in metrics)]
            for m in metrics:
                comp = result["comparison"].get(arm, {}).get(split, {}).get(m)
                rel = comp["relative"] if comp else None
                cells.append(f"{_pm(rel, 1, 100, True)} % ({comp['wins']}/{len(result['seeds'])})" if rel else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def svg_bar_chart(
    groups: Sequence[str], series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *,
    title: str, y_label: str, width: int = 720, height: int = 360,
) -> str:
    """Grouped bars: one group per entry of `groups`, one bar per series (name, means, stds) with an
    error bar of ± std. Returns a standalone SVG document; all text is XML-escaped."""
    if any(len(means) != len(groups) or len(stds) != len(groups) for _, means, stds in series):
        raise ValueError("every series needs one mean and one std per group")
    left, right, top, bottom = 60, 20, 40, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([m + s for _, means, stds in series for m, s in zip(means, stds, strict=True)] + [1e-9])
    y_max = math.ceil(peak * 10 + 1e-9) / 10  # the next tenth above the highest error bar

    def y(value: float) -> float:
        return top + plot_h * (1 - max(value, 0.0) / y_max)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for tick in range(round(y_max * 10) + 1):
        value = tick / 10
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.1f}</text>')
    out.append(f'<text transform="translate(16 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    group_w = plot_w / max(len(groups), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, (name, means, stds) in enumerate(series):
            x, mean, std = x0 + s * bar_w, means[g], stds[g]
            colour = ARM_COLOURS[s % len(ARM_COLOURS)]
            out.append(f'<rect x="{x:.1f}" y="{y(mean):.1f}" width="{bar_w * 0.9:.1f}" '
                       f'height="{y(0) - y(mean):.1f}" fill="{colour}"><title>{escape(name)} {escape(group)}: '
                       f'{mean:.3f} ± {std:.3f}</title></rect>')
            cx = x + bar_w * 0.45
            out.append(f'<path d="M{cx:.1f} {y(mean + std):.1f}V{y(mean - std):.1f}M{cx - 4:.1f} '
                       f'{y(mean + std):.1f}h8M{cx - 4:.1f} {y(mean - std):.1f}h8" stroke="#222"/>')
            out.append(f'<text x="{cx:.1f}" y="{y(mean + std) - 4:.1f}" text-anchor="middle" font-size="9">'
                       f'{mean:.3f}</text>')
        out.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f'{escape(group)}</text>')
    lx = left
    for s, (name, _, _) in enumerate(series):
        out.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{ARM_COLOURS[s % len(ARM_COLOURS)]}"/>'
                   f'<text x="{lx + 16}" y="{height - 12}">{escape(name)}</text>')
        lx += 36 + 7 * len(name)  # about 7 px per character at 12 px sans-serif
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#222"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ndcg_chart(result: Mapping[str, Any], title: str) -> str:
    """`svg_bar_chart` of NDCG@10 per split and arm (error bars: std over seeds)."""
    series = [(arm, [result["summary"][arm][s]["ndcg@10"]["mean"] for s in result["splits"]],
               [result["summary"][arm][s]["ndcg@10"]["std"] for s in result["splits"]]) for arm in result["arms"]]
    return svg_bar_chart(result["splits"], series, title=title,
                         y_label=f"NDCG@10 (mean ± std over {len(result['seeds'])} seeds)")


__all__ = ["METRICS", "aggregate", "headline_table", "markdown_table", "ndcg_chart", "paired", "summarize",
           "svg_bar_chart"]
