"""Where settings come from: flag > environment variable > `gcl-vdb.toml` in the working directory > default.

The CLI resolves them once, at the edge, into a frozen `Settings`; the library takes plain arguments.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcl_vectordb.errors import ConfigError

CONFIG_FILE = "gcl-vdb.toml"
WORK_DIR = Path("gcl-vdb-work")
"""What the demo (and a user following the README) writes: data, training runs, the exported model."""

DEFAULTS: dict[str, str] = {
    "store": "gcl-vdb-store",  # embedded Qdrant engine, one folder per collection
    "data": str(WORK_DIR / "data"),
    "collection": "gs10m",
    "model": str(WORK_DIR / "model"),  # the ONNX bundle the demo exports
    "api_key_env": "QDRANT_API_KEY",
}
ENV_VARS: dict[str, str] = {
    "store": "GCL_VDB_STORE",
    "data": "GCL_VDB_DATA",
    "collection": "GCL_VDB_COLLECTION",
    "model": "GCL_VDB_MODEL",
    "api_key_env": "GCL_VDB_API_KEY_ENV",
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. `store` is a folder (embedded engine) or an http(s) URL (Qdrant server)."""

    store: str
    data: Path
    collection: str
    model: str
    api_key_env: str

    @property
    def api_key(self) -> str | None:
        """The server API key, read from the environment variable named by `api_key_env` (never logged)."""
        return os.environ.get(self.api_key_env) or None


def _read_config_file(cwd: Path) -> dict[str, Any]:
    path = cwd / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file or remove it") from exc
    unknown = sorted(set(table) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}", f"known settings: {', '.join(DEFAULTS)}"
        )
    return table


def resolve_settings(cwd: Path | None = None, **flags: str | Path | None) -> Settings:
    """Resolve each setting from the first source that has it: flags, environment, config file, defaults."""
    unknown = sorted(set(flags) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    file_values = _read_config_file(cwd or Path.cwd())
    resolved: dict[str, str] = {}
    for key, default in DEFAULTS.items():
        flag = flags.get(key)
        if flag is not None:
            resolved[key] = str(flag)
        elif os.environ.get(ENV_VARS[key]):
            resolved[key] = os.environ[ENV_VARS[key]]
        elif key in file_values:
            resolved[key] = str(file_values[key])
        else:
            resolved[key] = default
    return Settings(
        store=resolved["store"],
        data=Path(resolved["data"]),
        collection=resolved["collection"],
        model=resolved["model"],
        api_key_env=resolved["api_key_env"],
    )


@dataclass(frozen=True)
class TorchrunEnv:
    """What torchrun tells each process it starts: its rank among `world_size`, and its local rank (the
    index of its GPU on this machine)."""

    rank: int
    world_size: int
    local_rank: int


def torchrun_env() -> TorchrunEnv | None:
    """torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`; None outside torchrun (no `WORLD_SIZE`)."""
    if not os.environ.get("WORLD_SIZE"):
        return None
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        text = os.environ.get(name) or default
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name}={text!r} is not an integer", "unset it or fix it") from None
    return TorchrunEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def hub_token() -> str | None:
    """The Hugging Face token (`HF_TOKEN`) for `data download --source hf`, or None (public data)."""
    return os.environ.get("HF_TOKEN") or None
