"""`gcl-vdb demo` end to end on a small synthetic dataset and gcl-micro: every stage runs, the page shows
ranked products with images, a re-run skips every finished stage, `--baseline` adds the CLIP model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app

SMALL = ["--products", "80", "--queries", "24", "--max-steps", "2",
         "-o", "model.name=gcl-micro", "-o", "batch_size=8", "-o", "eval.before_training=False"]


def _demo(tmp_path: Path, *extra: str):
    args = ["demo", "--work", str(tmp_path / "work"), "--qdrant", str(tmp_path / "store"), *SMALL, *extra]
    return CliRunner().invoke(app, args)


@pytest.mark.slow
def test_demo_runs_every_stage_then_resumes_and_adds_the_baseline(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.exit_code == 0, first.output
    state = json.loads((tmp_path / "work" / "demo-state.json").read_text())
    assert {"data", "train-gcl", "export-gcl", "ingest-gcl", "evaluate-gcl"} <= set(state)
    assert "red summer dress" in first.output
    assert "ranking quality" in first.output

    page = (tmp_path / "work" / "demo.html").read_text()
    assert page.count('class="card"') == 4 * 8  # 4 showcase queries × 8 ranked products
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', page)) == 4 * 8
    assert "NDCG@10" in page
    evaluation = json.loads((tmp_path / "work" / "evaluation-gcl.json").read_text())
    assert set(evaluation["splits"]) == {"in-domain", "novel-query", "novel-doc", "zero-shot"}

    again = _demo(tmp_path)
    assert again.exit_code == 0, again.output
    for stage in ("data", "train-gcl", "export-gcl", "ingest-gcl", "evaluate-gcl"):
        assert re.search(rf"{stage}\s+│\s+skipped", again.output), stage

    baseline = _demo(tmp_path, "--baseline")
    assert baseline.exit_code == 0, baseline.output
    assert re.search(r"train-gcl\s+│\s+skipped", baseline.output)
    assert re.search(r"train-clip\s+│\s+ran", baseline.output)
    assert re.search(r"in-domain\s+│\s+NDCG@10\s+│\s+[\d.]+\s+│\s+[\d.]+\s+│\s+[+-][\d.]+%", baseline.output)
    assert (tmp_path / "work" / "evaluation-clip.json").is_file()


def test_demo_rejects_a_dataset_too_small_to_split(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--work", str(tmp_path), "--products", "10"])
    assert result.exit_code == 2
