from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.settings import resolve_settings


def test_settings_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GCL_VDB_STORE", raising=False)
    monkeypatch.delenv("GCL_VDB_COLLECTION", raising=False)
    assert resolve_settings(cwd=tmp_path).collection == "gs10m"
    (tmp_path / "gcl-vdb.toml").write_text('collection = "from-file"\nstore = "file-store"\n')
    assert resolve_settings(cwd=tmp_path).collection == "from-file"
    monkeypatch.setenv("GCL_VDB_COLLECTION", "from-env")
    settings = resolve_settings(cwd=tmp_path)
    assert settings.collection == "from-env"
    assert settings.store == "file-store"
    assert resolve_settings(cwd=tmp_path, collection="from-flag").collection == "from-flag"


def test_settings_reject_unknown_keys_and_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "gcl-vdb.toml").write_text('colection = "typo"\n')
    with pytest.raises(ConfigError, match="unknown setting.*colection"):
        resolve_settings(cwd=tmp_path)
    (tmp_path / "gcl-vdb.toml").write_text("collection = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_settings(cwd=tmp_path)


def test_api_key_is_read_from_the_named_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_QDRANT_KEY", "s3cret")
    settings = resolve_settings(cwd=tmp_path, api_key_env="MY_QDRANT_KEY")
    assert settings.api_key == "s3cret"
    assert "s3cret" not in repr(settings)


def test_expected_error_is_one_line_exit_1_without_traceback() -> None:
    probe = typer.Typer()

    @probe.command("boom")
    def _boom() -> None:
        raise DataError("corpus_1.json is missing in /x", "run `gcl-vdb data synth --out /x`")

    app.add_typer(probe, name="probe-errors")
    try:
        result = CliRunner().invoke(app, ["probe-errors", "boom"])
    finally:
        app.registered_groups.pop()
    assert result.exit_code == 1
    assert "error: corpus_1.json is missing in /x — run `gcl-vdb data synth --out /x`" in result.output
    assert "Traceback" not in result.output


def test_version_and_usage_exit_codes() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).exit_code == 0
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_module_entry_point_runs(subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gcl_vectordb", "--version"],
        env=subprocess_env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip().startswith("gcl-vdb ")
