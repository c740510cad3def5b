"""`gcl-vdb data synth` and `gcl-vdb data info` through the Typer app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gcl_vectordb.cli.app import app

runner = CliRunner()


def test_synth_writes_the_official_layout_and_prints_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "gs"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--products", "40", "--queries", "8",
                                 "--seed", "1", "--image-size", "16", "--results-per-query", "6"])
    assert result.exit_code == 0, result.output
    assert (out / "corpus_1.json").is_file() and (out / "query_1_product_id_1.csv").is_file()
    assert all(word in result.output for word in ("official layout", "in-domain", "zero-shot"))
    assert "title only" in result.output and "no title" in result.output
    assert "6 train + 2 unseen queries" in " ".join(result.output.split())  # rich wraps at 80 columns


def test_synth_parquet_then_info_json(tmp_path: Path) -> None:
    out = tmp_path / "hf"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--products", "30", "--queries", "6",
                                 "--format", "parquet", "--no-images", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["info"]["layout"] == "parquet" and report["images"] == 0
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "in_domain-00000-of-00001.parquet", "novel_document-00000-of-00001.parquet",
        "novel_query-00000-of-00001.parquet", "zero_shot-00000-of-00001.parquet"]
    info = runner.invoke(app, ["data", "info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.stdout)
    assert summary == report["info"]
    assert [s["name"] for s in summary["splits"]] == ["in-domain", "novel-query", "novel-doc", "zero-shot"]
    assert all(s["score_linear"][0] >= 1 for s in summary["splits"])
    assert [c["without_image"] for c in summary["corpora"]] == [c["products"] for c in summary["corpora"]]


def test_info_reports_missing_images_and_rejects(tiny_gs: Path, tmp_path: Path) -> None:
    gs = tmp_path / "gs"
    shutil.copytree(tiny_gs, gs)
    next((gs / "images").rglob("*.jpg")).unlink()
    result = runner.invoke(app, ["data", "info", str(gs)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 rows would be skipped (missing-image 1)" in output
    assert "missing-image (no file " in output
    data = json.loads(runner.invoke(app, ["data", "info", str(gs), "--json", "--no-check-images"]).stdout)
    assert data["rejects"] == {}


def test_info_on_a_folder_without_a_dataset_is_one_line_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", str(tmp_path)])
    assert result.exit_code == 1
    assert "holds no Marqo-GS dataset" in result.output and "gcl-vdb data synth --out DIR" in result.output
    assert "Traceback" not in result.output


def test_synth_bad_values_exit_2_or_1(tmp_path: Path) -> None:
    too_few = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--products", "2"])
    assert too_few.exit_code == 2
    too_many = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--queries", "9999"])
    assert too_many.exit_code == 1 and "queries must be in 5..2689" in too_many.output


def test_synth_help_shows_an_example() -> None:
    result = runner.invoke(app, ["data", "synth", "--help"])
    assert result.exit_code == 0 and "gcl-vdb data synth --out" in result.output


def test_synth_runs_as_a_module(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "gs"
    done = subprocess.run(
        [sys.executable, "-m", "gcl_vectordb", "data", "synth", "--out", str(out), "--products", "20",
         "--queries", "5", "--no-images", "--json"],
        env=subprocess_env, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["info"]["layout"] == "official"
