"""The replication's aggregation, paired comparison, tables and SVG chart on made-up per-seed figures."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from benchmarks.gcl_vs_clip_report import (
    aggregate,
    control_comparisons,
    headline_table,
    markdown_table,
    ndcg_chart,
    paired,
    summarize,
    svg_bar_chart,
)

SVG = "{http://www.w3.org/2000/svg}"

# NDCG@10 per seed: clip 0.40 / 0.50 / 0.60, gcl 0.44 / 0.50 / 0.69 → diffs 0.04, 0, 0.09.
CLIP = {"a": [0.40, 0.50, 0.60], "b": [0.20, 0.30, 0.25]}
GCL = {"a": [0.44, 0.50, 0.69], "b": [0.10, 0.30, 0.20]}


def _runs() -> list[dict]:
    runs = []
    for arm, figures in (("clip", CLIP), ("gcl-linear", GCL)):
        for seed in range(3):
            splits = {split: {"ndcg@10": values[seed], "err": values[seed] / 2} for split, values in figures.items()}
            runs.append({"arm": arm, "seed": seed, "splits": splits})
    return runs


def test_summarize_is_mean_sample_std_min_max() -> None:
    stats = summarize([0.40, 0.50, 0.60])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.5)
    assert stats["std"] == pytest.approx(0.1)  # sqrt((0.01 + 0 + 0.01) / (3 − 1))
    assert (stats["min"], stats["max"]) == (0.40, 0.60)
    assert summarize([0.7])["std"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_paired_differences_relative_change_and_sign_count() -> None:
    comp = paired(CLIP["a"], GCL["a"])
    assert comp["diff"]["mean"] == pytest.approx((0.04 + 0.0 + 0.09) / 3)
    relative = [0.04 / 0.40, 0.0, 0.09 / 0.60]
    assert comp["relative"]["mean"] == pytest.approx(sum(relative) / 3)
    mean = sum(relative) / 3
    assert comp["relative"]["std"] == pytest.approx(math.sqrt(sum((r - mean) ** 2 for r in relative) / 2))
    assert (comp["wins"], comp["ties"], comp["losses"]) == (2, 1, 0)
    assert paired([0.0, 0.1], [0.1, 0.2])["relative"] is None  # a zero baseline has no relative change
    with pytest.raises(ValueError):
        paired([0.1], [0.1, 0.2])


def test_aggregate_pairs_seed_by_seed_against_the_baseline() -> None:
    runs = _runs()[::-1]  # order of the runs must not matter
    result = aggregate(runs, metrics=("ndcg@10", "err"))
    assert result["seeds"] == [0, 1, 2] and set(result["arms"]) == {"clip", "gcl-linear"}
    assert result["summary"]["clip"]["a"]["ndcg@10"]["mean"] == pytest.approx(0.5)
    assert result["summary"]["gcl-linear"]["b"]["err"]["mean"] == pytest.approx(0.1)
    comp = result["comparison"]["gcl-linear"]["b"]["ndcg@10"]
    assert comp["diff"]["mean"] == pytest.approx(-0.05)  # (−0.1 + 0 − 0.05) / 3
    assert (comp["wins"], comp["ties"], comp["losses"]) == (0, 1, 2)
    assert "clip" not in result["comparison"]
    with pytest.raises(ValueError, match="missing"):
        aggregate(runs[1:], metrics=("ndcg@10",))
    with pytest.raises(ValueError, match="baseline"):
        aggregate([r for r in runs if r["arm"] != "clip"], metrics=("ndcg@10",))


def test_graded_arm_is_paired_against_its_shuffled_control_only() -> None:
    runs = _runs()
    for seed in range(3):  # the control: the gcl figures lowered by 0.1 in split a, equal in split b
        splits = {"a": {"ndcg@10": GCL["a"][seed] - 0.1, "err": 0.2, "rbp@0.8": 0.3},
                  "b": {"ndcg@10": GCL["b"][seed], "err": 0.2, "rbp@0.8": 0.3}}
        runs.append({"arm": "control-shuffled-linear", "seed": seed, "splits": splits})
    for run in runs:
        for figures in run["splits"].values():
            figures.setdefault("rbp@0.8", 0.3)
    controls = control_comparisons(runs)
    assert list(controls) == ["gcl-linear"] and controls["gcl-linear"]["control"] == "control-shuffled-linear"
    a = controls["gcl-linear"]["comparison"]["a"]["ndcg@10"]
    assert a["diff"]["mean"] == pytest.approx(0.1) and a["wins"] == 3
    b = controls["gcl-linear"]["comparison"]["b"]["ndcg@10"]
    assert b["diff"]["mean"] == pytest.approx(0.0) and b["ties"] == 3
    assert control_comparisons(_runs()) == {}  # no control arm, nothing to compare


def test_tables_show_the_figures() -> None:
    result = aggregate(_runs(), metrics=("ndcg@10", "err"))
    full = markdown_table(result, metrics=("ndcg@10",))
    assert "| a | NDCG@10 | clip | 0.500 ± 0.100 | 0.400 – 0.600 |" in full
    assert "| a | NDCG@10 | gcl-linear | 0.543 ± 0.131 | 0.440 – 0.690 | +0.043 ± 0.045 |" in full
    assert "2 / 1 / 0" in full and "0 / 1 / 2" in full
    short = headline_table(result, metrics=("ndcg@10",))
    assert "(2/3)" in short and short.count("\n") == 2 + 4  # header, rule, 2 splits × 2 arms


def test_svg_is_well_formed_with_one_bar_per_arm_and_split_and_escaped_text() -> None:
    result = aggregate(_runs(), metrics=("ndcg@10",))
    root = ET.fromstring(ndcg_chart(result, "NDCG@10 <gcl> & \"clip\""))
    assert root.tag == f"{SVG}svg"
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "NDCG@10 <gcl> & \"clip\"" in texts  # escaped in the file, intact once parsed
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 2 * 2
    heights = {r.find(f"{SVG}title").text: float(r.get("height")) for r in bars}
    assert heights["clip a: 0.500 ± 0.100"] > heights["gcl-linear b: 0.200 ± 0.100"] > 0
    with pytest.raises(ValueError):
        svg_bar_chart(["a", "b"], [("x", [0.1], [0.0])], title="t", y_label="y")


def test_svg_escapes_arm_and_group_names() -> None:
    text = svg_bar_chart(["<in>"], [("a&b", [0.3], [0.05])], title="t", y_label="y")
    assert "&lt;in&gt;" in text and "a&amp;b" in text and "<in>" not in text
    ET.fromstring(text)
