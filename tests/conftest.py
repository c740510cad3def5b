"""Shared fixtures. Tests are offline and fast by default; heavy artefacts are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.encoder_fixtures"]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m gcl_vectordb` subprocesses: import this checkout, not an installed copy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
