"""Plain values ↔ frozen dataclass trees: type-checked building, config files, `key.sub=value` overrides.

The machinery behind `trainer.config` (which holds the settings themselves). Supported field types: int,
float, bool, str, Path, Literal[...], X | None, tuple[X, Y], tuple[X, ...], dict[str, X] and nested
dataclasses. Override values go through `ast.literal_eval`, falling back to the raw text — never `eval`.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from gcl_vectordb.errors import ConfigError

# --- building from plain values --------------------------------------------------------------------


def build_dataclass(cls: type, values: Any, prefix: str = "") -> Any:
    """`cls(**values)` with nested dataclasses built from nested mappings and every value type-checked."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a table of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(prefix + str(key) for key in unknown)}",
            f"valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(names)}",
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if hasattr(hint, "from_mapping"):  # a domain type with its own validated constructor
            kwargs[name] = hint.from_mapping(value, prefix + name) if isinstance(value, Mapping) else value
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = build_dataclass(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` as the type `hint` says (int, float, bool, str, Path, Literal, X | None, tuple, dict)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, "a list", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0], f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} needs {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(item, arg, f"{key}[{i}]") for i, (item, arg) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(key, "a table {name: value}", value)
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    return _coerce_scalar(value, hint, key)


def _coerce_scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise _type_error(key, "true or false", value)
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(key, "an integer", value)
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _type_error(key, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _type_error(key, "text", value)
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise _type_error(key, "a path", value)
        return Path(value).expanduser()
    raise AssertionError(f"unsupported config type {hint!r} for {key}")  # a field type we never declared


def _type_error(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{key} must be {expected}, got {value!r} ({type(value).__name__})")


def plain(value: Any) -> Any:
    """Paths as text, tuples as lists, recursively (what TOML and JSON hold)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --- files and overrides ------------------------------------------------------------------------------


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings table of a TOML file (`tomllib`) or, when pyyaml is installed, a YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}", "check the path") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # optional: of the install extras only `dev` brings PyYAML
        except ImportError:
            raise ConfigError(f"{path} is YAML, which needs pyyaml", "pip install pyyaml, or use TOML") from None
        try:
            table = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}", "fix the file") from None
    else:
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path} must hold a table of settings")
    return table


def parse_override(text: str) -> tuple[list[str], Any, str]:
    """`"optim.lr=1e-3"` → (["optim", "lr"], 0.001, "1e-3"): key path, literal value, raw text."""
    key, sep, raw = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or not all(path):
        raise ConfigError(f"bad override {text!r}", "write key.sub=value, e.g. optim.lr=1e-3")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw
    return path, value, raw


def apply_overrides(values: dict[str, Any], overrides: Sequence[str], root: type) -> dict[str, Any]:
    """A copy of nested `values` (every key of dataclass `root`, as `plain(asdict(...))`) with each
    `key.sub=value` set; keys are checked against `root`'s fields."""
    result = copy.deepcopy(values)
    for text in overrides:
        path, value, raw = parse_override(text)
        node, hints, walked = result, typing.get_type_hints(root), []
        for part in path[:-1]:
            walked.append(part)
            _require_key(node, part, walked)
            if not isinstance(node[part], dict):
                raise ConfigError(f"{'.'.join(walked)} is a single setting, not a section", f"write {'.'.join(walked)}=value")
            hint = hints.get(part) if hints is not None else None
            hints = typing.get_type_hints(hint) if dataclasses.is_dataclass(hint) else None
            node = node[part]
        leaf = path[-1]
        if hints is not None:  # inside a dataclass section: the key must exist; mapping fields take any key
            _require_key(node, leaf, [*walked, leaf])
        hint = hints.get(leaf) if hints is not None else None
        node[leaf] = raw if _is_textual(hint) and not isinstance(value, str) and value is not None else value
    return result


def _require_key(node: Mapping[str, Any], key: str, walked: list[str]) -> None:
    if key not in node:
        where = ".".join(walked[:-1])
        raise ConfigError(
            f"unknown setting {'.'.join(walked)}",
            f"valid keys{' in ' + where if where else ''}: {', '.join(node)}",
        )


def _is_textual(hint: Any) -> bool:
    """True for str / Path fields (optional or not): their override value is the text as written."""
    if hint is None:
        return False
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return len(args) == 1 and args[0] in (str, Path)
