"""The pretrained-start benchmarks' pure parts: arm specs, validation curves and peaks, the goal check."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.gcl_finetune import cached_run, parse_arm, validation_curve
from benchmarks.gcl_vs_clip_data import list_order
from benchmarks.gcl_vs_clip_pretrained import goal
from benchmarks.gcl_vs_clip_report import aggregate
from benchmarks.gcl_weight_study import compare_peaks, confirmation, curves, peaks
from trainer.config import load_config


@pytest.mark.parametrize(
    ("spec", "name", "overrides", "lr", "epochs"),
    [
        ("clip", "clip", ("loss.kind=clip",), None, None),
        ("clip:lr=1e-4,epochs=3", "clip", ("loss.kind=clip",), 1e-4, 3),
        ("linear", "gcl-linear", ("loss.kind=gcl", "loss.weights=linear"), None, None),
        ("power:gamma=2", "gcl-power-gamma2",
         ("loss.kind=gcl", "loss.weights=power", "loss.weight_params.gamma=2.0"), None, None),
        ("linear:floor=0.5,norm=batch,lr=3e-4", "gcl-linear-floor0.5-batch",
         ("loss.kind=gcl", "loss.weights=linear", "loss.weight_floor=0.5", "loss.normalize=batch"), 3e-4, None),
    ],
)
def test_arm_specs(spec: str, name: str, overrides: tuple, lr: float | None, epochs: int | None) -> None:
    arm = parse_arm(spec)
    assert (arm.name, arm.overrides, arm.lr, arm.epochs) == (name, overrides, lr, epochs)
    load_config(overrides=list(arm.overrides))  # every spec is a valid training config
    with pytest.raises(SystemExit, match="key=value"):
        parse_arm("linear:floor")
    with pytest.raises(SystemExit, match="only lr and epochs"):
        parse_arm("clip:gamma=2")


def test_validation_curve_reads_the_run_record(tmp_path: Path) -> None:
    record = {"eval_before": {"ndcg@10": 0.3}, "epochs": [
        {"epoch": 0, "step": 10, "eval": {"ndcg@10": 0.4}}, {"epoch": 1, "step": 20, "eval": {"ndcg@10": 0.5}}]}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert validation_curve(tmp_path) == [{"epoch": 0, "step": 0, "ndcg@10": 0.3},
                                          {"epoch": 1, "step": 10, "ndcg@10": 0.4},
                                          {"epoch": 2, "step": 20, "ndcg@10": 0.5}]


def test_cached_run_computes_once(tmp_path: Path) -> None:
    calls = []
    key = {"arm": "clip", "seed": 0, "lr": 1e-4}
    for _ in range(2):
        assert cached_run(tmp_path, key, lambda: calls.append(1) or {"arm": "clip", "x": 1}) == {"arm": "clip", "x": 1}
    assert len(calls) == 1 and len(list((tmp_path / "runs").glob("clip-s0-*.json"))) == 1


def _study_run(arm: str, lr: float, seed: int, ndcg: list[float], spec: str | None = None) -> dict:
    return {"arm": arm, "spec": spec or arm.removeprefix("gcl-"), "lr": lr, "seed": seed,
            "validation": [{"ndcg@10": v, "err": v / 2, "rbp@0.8": v / 3} for v in ndcg]}


def test_peaks_pick_the_best_mean_over_seeds_after_epoch_zero() -> None:
    runs = [
        _study_run("clip", 1e-4, 0, [0.9, 0.40, 0.50]), _study_run("clip", 1e-4, 1, [0.9, 0.42, 0.48]),
        _study_run("clip", 3e-4, 0, [0.9, 0.46, 0.44]), _study_run("clip", 3e-4, 1, [0.9, 0.46, 0.43]),
        _study_run("gcl-linear", 1e-4, 0, [0.9, 0.50, 0.55]), _study_run("gcl-linear", 1e-4, 1, [0.9, 0.47, 0.50]),
    ]
    table = curves(runs)
    assert table["clip"][1e-4][2]["mean"] == pytest.approx(0.49) and len(table["clip"][3e-4]) == 3
    best = peaks(runs)  # epoch 0 (0.9, the start) is never a peak
    assert (best["clip"]["lr"], best["clip"]["epoch"]) == (1e-4, 2)
    assert best["clip"]["per_seed"]["ndcg@10"] == [0.50, 0.48]
    assert (best["gcl-linear"]["lr"], best["gcl-linear"]["epoch"]) == (1e-4, 2)
    comparison = compare_peaks(best)
    vs = comparison["gcl-linear"]["ndcg@10"]["vs_clip"]
    assert vs["wins"] == 2 and vs["relative"]["mean"] == pytest.approx((0.05 / 0.50 + 0.02 / 0.48) / 2)
    assert "vs_clip" not in comparison["clip"]["ndcg@10"]


def test_confirmation_takes_the_best_gcl_arm_at_its_peak_against_clip_at_its_own() -> None:
    runs = [
        _study_run("clip", 1e-4, 0, [0.4, 0.50, 0.51]), _study_run("clip", 1e-4, 1, [0.4, 0.52, 0.53]),
        _study_run("gcl-linear", 1e-4, 0, [0.4, 0.53, 0.50]), _study_run("gcl-linear", 1e-4, 1, [0.4, 0.53, 0.50]),
        _study_run("gcl-linear-floor0.5", 3e-4, 0, [0.4, 0.50, 0.54], "linear:floor=0.5"),
        _study_run("gcl-linear-floor0.5", 3e-4, 1, [0.4, 0.52, 0.54], "linear:floor=0.5"),
    ]
    chosen = confirmation(peaks(runs))
    assert (chosen["arm"], chosen["arms"]) == (
        "gcl-linear-floor0.5", ["clip:lr=0.0001,epochs=2", "linear:floor=0.5,lr=0.0003,epochs=2"])
    assert chosen["command"].endswith("--name gcl_weight_study_confirmation --arms " + " ".join(chosen["arms"]))
    assert [parse_arm(spec).epochs for spec in chosen["arms"]] == [2, 2]  # specs the main comparison accepts


def test_goal_needs_the_mean_and_four_of_five_seeds() -> None:
    clip = [0.50, 0.50, 0.50, 0.50, 0.50]
    gcl = {"in-domain": [0.56, 0.56, 0.56, 0.56, 0.54], "zero-shot": [0.51, 0.51, 0.51, 0.49, 0.49]}
    runs = [{"arm": arm, "seed": s, "splits": {split: {"ndcg@10": (clip[s] if arm == "clip" else gcl[split][s])}
                                                for split in gcl}} for arm in ("clip", "gcl-linear") for s in range(5)]
    checks = goal(runs, aggregate(runs, metrics=("ndcg@10",)))["gcl-linear"]
    assert checks["in-domain"]["agree"] == 4 and checks["in-domain"]["met"]  # +11.2 % mean, 4 seeds ≥ +10 %
    assert checks["in-domain"]["per_seed"][4] == pytest.approx(0.08)
    assert checks["zero-shot"]["agree"] == 3 and not checks["zero-shot"]["met"]  # +0.4 % mean, only 3/5 ≥ 0


def test_list_order_shares_count_position_pairs() -> None:
    # List 0 (matches by position 3, 3, 2): one tie, two pairs ordered by content; list 1 (1, 2): inverted.
    lists = SimpleNamespace(query=np.array([0, 0, 0, 1, 1]), matches=np.array([3, 3, 2, 1, 2], dtype=np.int8))
    assert list_order(SimpleNamespace(lists=lists)) == {
        "ordered_by_content": 0.5, "tied_order_is_noise": 0.25, "inverted_by_noise": 0.25}


def test_grad_clip_report_sets_the_normalisation_difference_beside_the_rounding_control() -> None:
    import torch

    from benchmarks.gcl_grad_clip import markdown, max_difference

    a = {"w": torch.tensor([1.0, -4.0]), "b": torch.tensor([0.5])}
    b = {"w": torch.tensor([1.0, -4.0]), "b": torch.tensor([0.25])}
    assert max_difference(a, b) == {"max_abs": 0.25, "relative": 0.0625}  # of the largest |parameter|, 4
    settings = {"steps": 3, "lr": 4.5e-4, "seed": 0, "data": (300, 40, 0), "machine": {"cpus": 2},
                "command": "python benchmarks/gcl_grad_clip.py --quick"}
    by_clip = {"1.0": {"grad_norms": {"sum_w": [2.0, 3.0, 4.0], "batch": [1.5, 2.0, 3.0]},
                       "clipped": {"sum_w": 3, "batch": 3}, "difference": {"max_abs": 0.01, "relative": 0.002}},
               "off": {"grad_norms": {"sum_w": [], "batch": []}, "clipped": {},
                       "difference": {"max_abs": 0.03, "relative": 0.006}}}
    result = {"settings": settings, "by_clip": by_clip, "reading": "r",
              "rounding_control": {"threads": [2, 1], "difference": {"max_abs": 0.004, "relative": 0.0008}}}
    text = markdown(result)
    assert "| 1.0 | 3 | 3/3 (Σw), 3/3 (batch) | 2.00 / 3.00 / 4.00 (Σw) | 0.01 (0.002 of" in text
    assert "| 1.0, Σw at 2 vs 1 threads (rounding control) | 3 | | | 0.004 (0.0008 of" in text
    assert "rounding control" not in markdown({**result, "rounding_control": None})  # files from before it
