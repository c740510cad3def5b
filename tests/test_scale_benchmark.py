"""benchmarks/scale.py's own checks: its clustered generator and its refusal of an unknown storage option.

The benchmark's figures are measured, never tested; these tests only check what the script computes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scale  # noqa: E402
import scale_data  # noqa: E402

SCRIPT = Path(scale.__file__)


def test_an_unknown_storage_option_is_one_line_before_any_work(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--storages", "fp32-ram,int4-tape", "--work", str(tmp_path)],
                          capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: unknown storage option 'int4-tape' — use one of fp32-ram, int8-disk, float16"
    assert list(tmp_path.iterdir()) == []


def test_clustered_embeddings_are_deterministic_unit_vectors_with_cluster_structure() -> None:
    generator = scale_data.ClusteredEmbeddings(scale_data.ClusterSpec(components=1000))
    whole = generator.products(0, 3000)  # one batch, as batches(6000) makes corpus 1
    assert {name: v.shape for name, v in whole.items()} == {n: (3000, scale_data.DIM) for n in ("image", "title", "fused")}
    for vectors in whole.values():
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = generator.products(0, 3000)
    np.testing.assert_array_equal(again["fused"], whole["fused"])
    labels = generator.components(np.arange(3000))
    fused = whole["fused"]
    same = [float(fused[i] @ fused[j]) for i in range(300) for j in range(i + 1, 300) if labels[i] == labels[j]]
    other = [float(fused[i] @ fused[j]) for i in range(300) for j in range(i + 1, 300) if labels[i] != labels[j]]
    assert np.mean(same) > np.mean(other) + 0.2  # products of one component are closer than others
    assert len(set(labels.tolist())) > 500  # ≥ 1,000 components, Zipf weights: most of them drawn
    assert [b[1:] for b in scale_data.batches(20_000)] == [(0, 8192), (8192, 1808), (10_000, 8192), (18_192, 1808)]
    stored = np.concatenate([generator.products(start, count)["title"] for _, start, count in scale_data.batches(3000)])
    queries = generator.queries(20, 3000, seed=1)
    assert queries.shape == (20, scale_data.DIM) and np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    nearest = (queries @ stored.T).max(axis=1)  # each query is a stored product's title plus noise
    assert nearest.min() > 0.9 * (1 / np.sqrt(1 + generator.spec.query_noise**2))
