"""The install extras: the base install serves without torch, and a missing extra is a clear error.

Each test runs `gcl-vdb` in a subprocess where modules are made "not installed" by putting None into
`sys.modules` (what both `import` and `importlib.util.find_spec` then report as absent).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLI = textwrap.dedent("""
    import json, sys
    absent = sys.argv[1].split(",")
    for name in absent:
        sys.modules[name] = None
    from typer.testing import CliRunner
    from gcl_vectordb.cli.app import app

    def run(*args):
        result = CliRunner().invoke(app, list(args))
        return {"code": result.exit_code, "stdout": result.stdout, "output": " ".join(result.output.split())}

    runs = [run(*command) for command in json.loads(sys.argv[2])]
    loaded = sorted(name for name in absent if sys.modules.get(name) is not None)
    print(json.dumps({"runs": runs, "loaded": loaded}))
""")
TRAIN_EXTRA = "pip install 'gcl-vdb[train]'"


def _cli(absent: tuple[str, ...], commands: list[list[str]], env: dict[str, str]) -> list[dict]:
    run = subprocess.run([sys.executable, "-c", CLI, ",".join(absent), json.dumps(commands)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    return result["runs"]


@pytest.mark.slow
def test_the_base_install_synthesises_ingests_queries_and_evaluates_without_torch(
    tmp_path: Path, micro_bundle: Path, subprocess_env: dict[str, str]
) -> None:
    """What the base install + `cpu` promises, with every module of the `train` extra absent (onnx too)."""
    data, store = str(tmp_path / "gs"), str(tmp_path / "store")
    runs = _cli(
        ("torch", "torchvision", "open_clip", "onnx", "onnxscript", "safetensors"),
        [["data", "synth", "--out", data, "--products", "40", "--queries", "10", "--image-size", "32"],
         ["ingest", "--collection", "gs", "--data", data, "--model", str(micro_bundle), "--qdrant", store,
          "--workers", "0", "--json"],
         ["query", "red summer dress", "--collection", "gs", "--qdrant", store, "--limit", "5", "--json"],
         ["evaluate", "--split", "in-domain", "--collection", "gs", "--qdrant", store, "--json"]],
        subprocess_env,
    )
    assert [r["code"] for r in runs] == [0, 0, 0, 0], runs
    assert json.loads(runs[1]["stdout"])["points_written"] > 0
    assert len(json.loads(runs[2]["stdout"])["hits"]) == 5
    assert "ndcg@10" in runs[3]["stdout"]


def test_without_an_onnx_runtime_a_query_names_the_cpu_and_gpu_extras(
    ingested: Path, subprocess_env: dict[str, str]
) -> None:
    (run,) = _cli(("onnxruntime",), [["query", "red dress", "--collection", "gs", "--qdrant", str(ingested)]],
                  subprocess_env)
    assert run["code"] == 1
    assert "needs ONNX Runtime, which is not installed" in run["output"]
    assert "pip install 'gcl-vdb[cpu]', or 'gcl-vdb[gpu]' on a CUDA machine" in run["output"]
    assert "never both" in run["output"]


def test_without_torch_train_export_and_torch_models_name_the_train_extra(
    tmp_path: Path, tiny_gs: Path, subprocess_env: dict[str, str]
) -> None:
    runs = _cli(
        ("torch", "torchvision", "open_clip"),
        [["train", "--data", str(tiny_gs), "--out", str(tmp_path / "run")],
         ["export", "--model", "gcl-micro", "--out", str(tmp_path / "bundle")],
         ["ingest", "--collection", "gs", "--data", str(tiny_gs), "--model", "gcl-micro",
          "--qdrant", str(tmp_path / "store"), "--workers", "0"]],
        subprocess_env,
    )
    assert [r["code"] for r in runs] == [1, 1, 1], runs
    assert "training needs torch and open_clip" in runs[0]["output"]
    assert "exporting to ONNX needs torch and open_clip" in runs[1]["output"]
    assert "the model gcl-micro needs torch and open_clip" in runs[2]["output"]
    assert all("(not installed: torch, torchvision, open_clip)" in r["output"] for r in runs)
    assert all(TRAIN_EXTRA in r["output"] for r in runs)
