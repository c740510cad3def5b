from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from gcl_vectordb.cli import app as cli_app
from gcl_vectordb.cli.app import app
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.settings import ENV_VARS, resolve_settings


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


probe = typer.Typer()  # a command module, loaded through the command table like the real ones


@probe.command("boom")
def _boom() -> None:
    raise DataError("corpus_1.json is missing in /x", "run `gcl-vdb data synth --out /x`")


def test_expected_error_is_one_line_exit_1_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_app.COMMANDS, "probe-errors", "tests.cli_probe")
    monkeypatch.setitem(sys.modules, "tests.cli_probe", type(sys)("tests.cli_probe"))
    sys.modules["tests.cli_probe"].app = probe
    result = CliRunner().invoke(app, ["probe-errors"])
    assert result.exit_code == 1
    assert "error: corpus_1.json is missing in /x — run `gcl-vdb data synth --out /x`" in result.output
    assert "Traceback" not in result.output


def test_version_and_usage_exit_codes() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).exit_code == 0
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    typo = runner.invoke(app, ["qury", "red dress"])
    assert typo.exit_code == 2 and "Did you mean 'query'" in typo.output


def _all_commands() -> dict[str, click.Command]:
    """Every leaf command by its full name ("data synth", "query", ...), loaded through the command table."""
    group = typer.main.get_command(app)
    ctx = click.Context(group)
    leaves = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):  # a group (typer vendors click: no isinstance check)
            leaves.update({f"{name} {sub}": command.get_command(ctx, sub) for sub in command.list_commands(ctx)})
        else:
            leaves[name] = command
    return leaves


SETTING_OPTIONS = {  # command → {parameter: the setting's environment variable its help must name}
    "data info": {"root": "GCL_VDB_DATA"},
    "train": {"data": "GCL_VDB_DATA"},
    "ingest": {"data": "GCL_VDB_DATA", "model": "GCL_VDB_MODEL"},
}
EVERYWHERE = {"qdrant": "GCL_VDB_STORE", "collection": "GCL_VDB_COLLECTION"}  # wherever a command has them


def test_every_command_is_listed_and_its_settings_name_their_env_vars() -> None:
    top = CliRunner().invoke(app, ["--help"])
    assert top.exit_code == 0
    assert all(name in top.output for name in cli_app.COMMANDS)
    commands = _all_commands()
    assert set(SETTING_OPTIONS) <= set(commands)
    named = {v for o in SETTING_OPTIONS.values() for v in o.values()} | set(EVERYWHERE.values())
    assert set(ENV_VARS.values()) - {"GCL_VDB_API_KEY_ENV"} == named
    with_store = 0
    for name, command in commands.items():
        assert command.help and command.help.strip(), name
        params = {param.name: param for param in command.params}
        expected = SETTING_OPTIONS.get(name, {}) | {p: env for p, env in EVERYWHERE.items() if p in params}
        for param, env in expected.items():
            assert env in (params[param].help or ""), (name, param)
        with_store += "qdrant" in params
    assert with_store >= 7  # ingest, query, evaluate, serve, the collections commands, demo


def test_json_is_a_flag_in_every_command_that_has_it() -> None:
    """One meaning for --json: print one JSON document on stdout (a file option has another name)."""
    with_json = 0
    for name, command in _all_commands().items():
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                assert param.is_flag and "JSON document on stdout" in param.help, name
                with_json += 1
    assert with_json == len(_all_commands())  # every command has it


def test_module_entry_point_runs(subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gcl_vectordb", "--version"],
        env=subprocess_env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip().startswith("gcl-vdb ")
