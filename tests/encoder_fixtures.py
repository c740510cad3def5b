"""Session fixtures for encoder tests: tiny models and ONNX bundles, built once per test session.

Other test modules may use them too (`tiny_bundle` is a ready gcl-tiny ONNX bundle with fp32 + int8).
Tests that damage a bundle must copy it first (`copy_bundle`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """gcl-tiny, seeded random init (a `LoadedClip`; do not modify its weights)."""
    from gcl_vectordb.encoders.models import create_clip_model
    return create_clip_model("gcl-tiny")


@pytest.fixture(scope="session")
def micro_model():
    """gcl-micro (dim 32, 32 px), seeded random init."""
    from gcl_vectordb.encoders.models import create_clip_model
    return create_clip_model("gcl-micro")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX bundle of gcl-tiny with fp32 and int8 variants (read-only: copy before changing it)."""
    from exporters import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "gcl-tiny"
    export_bundle(ExportConfig(out=out, model_ref="gcl-tiny", variants=("fp32", "int8")))
    return out


@pytest.fixture(scope="session")
def micro_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp32 ONNX bundle of gcl-micro (read-only)."""
    from exporters import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "gcl-micro"
    export_bundle(ExportConfig(out=out, model_ref="gcl-micro"))
    return out


def copy_bundle(bundle: Path, dest: Path) -> Path:
    """A private copy of a session bundle that a test may damage."""
    return Path(shutil.copytree(bundle, dest / bundle.name))
