"""The small public Python API: the example in `gcl_vectordb`'s docstring runs, and the import stays light."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import gcl_vectordb


def _example() -> str:
    doc = gcl_vectordb.__doc__ or ""
    return textwrap.dedent(doc.split("your own service:\n", 1)[1].split("\nNames are imported", 1)[0])


def test_the_readme_shows_the_example_that_runs() -> None:
    """The README says its Python example is run by the test suite: it must be the docstring's, verbatim."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1
    assert blocks[0].strip() == _example().strip()


def test_the_docstring_example_runs(tmp_path: Path, tiny_gs: Path, micro_bundle: Path,
                                    subprocess_env: dict[str, str]) -> None:
    shutil.copytree(tiny_gs, tmp_path / "gcl-vdb-work" / "data")
    shutil.copytree(micro_bundle, tmp_path / "gcl-vdb-work" / "model")
    (tmp_path / "example.py").write_text(_example())
    run = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=subprocess_env, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "55 points written, rejected: {}"
    assert [line.split()[0] for line in lines[1:11]] == [str(rank) for rank in range(1, 11)]
    headline = ast.literal_eval(lines[11])
    assert set(headline) == {"ndcg@10", "err", "rbp@0.7", "rbp@0.8", "rbp@0.9", "map@1000", "mrr@1000"}
    assert all(0.0 <= value <= 1.0 for value in headline.values())
    assert (tmp_path / "results.html").read_text().count('<article class="card"') == 10


LIGHT = textwrap.dedent("""
    import sys
    import gcl_vectordb as gv
    heavy = sorted(m for m in ("numpy", "qdrant_edge", "onnxruntime", "torch", "pandas", "PIL") if m in sys.modules)
    import gcl_vectordb.ingest  # binds gcl_vectordb.ingest to the package, which is not a function
    print(heavy, gv.ingest_dataset is gv.ingest.ingest_dataset, gv.ingest.IngestConfig is gv.IngestConfig,
          callable(gv.ingest), gv.search_products.__name__)
""")


def test_import_is_light_and_the_names_resolve(subprocess_env: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-c", LIGHT], env=subprocess_env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[] True True False search_products"
