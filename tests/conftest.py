"""Shared fixtures. Tests are offline and fast by default; heavy artefacts are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.encoder_fixtures", "tests.ingest_fixtures"]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m gcl_vectordb` subprocesses: import this checkout, not an installed copy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@pytest.fixture(scope="session")
def tiny_gs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic Marqo-GS dataset (official layout: 60 products, 12 queries, 32 px), built once.

    Read-only: a test that changes files copies it first (`shutil.copytree(tiny_gs, tmp_path / "gs")`).
    """
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("tiny-gs") / "gs"
    synthesize(SynthConfig(out=out, products=60, queries=12, image_size=32, seed=7, results_per_query=10))
    return out
