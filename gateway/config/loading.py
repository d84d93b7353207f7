"""Loading: config.toml overlaid by GATEWAY_<TABLE>__<KEY> variables, each value
coerced to its key's type, then checked (gateway.config.checks)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.checks import check
from gateway.config.model import SECTIONS, Config
from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"
DEFAULT_CONFIG_FILE = "config.toml"


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load config from `path` (default: $GATEWAY_CONFIG or ./config.toml if present)."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("GATEWAY_CONFIG") or None
        explicit = path is not None
        path = path or DEFAULT_CONFIG_FILE
    else:
        explicit = True
    file = Path(path)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("(file)", str(file), f"not valid TOML: {exc}") from exc
        source = str(file)
    elif explicit:
        raise ConfigError("(file)", str(file), "file not found")
    else:
        source = "defaults"
    base_dir = file.resolve().parent if file.exists() else Path.cwd()
    sections: dict[str, Any] = {}
    for table, values in data.items():
        if table not in SECTIONS:
            raise ConfigError(table, source, f"unknown table [{table}]")
        if not isinstance(values, dict):
            raise ConfigError(table, source, f"[{table}] must be a table")
        sections[table] = _build_section(table, SECTIONS[table], values, source)
    origins: list[tuple[str, str]] = []
    for table, cls in SECTIONS.items():
        overrides = _env_overrides(table, cls, environ, origins)
        if overrides:
            current = sections.get(table, cls())
            sections[table] = dataclasses.replace(current, **overrides)
    config = Config(**sections, base_dir=base_dir, source=source, overrides=tuple(origins))
    check(config)
    return config


def _build_section(table: str, cls: type, values: dict[str, Any], source: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{table}.{key}", source, "unknown key")
        kwargs[key] = _coerce(f"{table}.{key}", source, hints[key], value)
    return cls(**kwargs)


def _env_overrides(
    table: str, cls: type, environ: Mapping[str, str], origins: list[tuple[str, str]]
) -> dict[str, Any]:
    """The values GATEWAY_<TABLE>__<KEY> variables set; each key's variable is added
    to `origins`, so that a bad value is reported against the variable."""
    hints = typing.get_type_hints(cls)
    prefix = f"{ENV_PREFIX}{table.upper()}__"
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        where = f"environment variable {name}"
        if key not in hints:
            raise ConfigError(f"{table}.{key}", where, "unknown key")
        out[key] = _coerce(f"{table}.{key}", where, hints[key], _env_value(hints[key], raw))
        origins.append((f"{table}.{key}", where))
    # A variable naming an unknown table is an error too, not silently ignored.
    for name in environ:
        if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]:
            t = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if t not in SECTIONS:
                raise ConfigError(t, f"environment variable {name}", f"unknown table [{t}]")
    return out


def _env_value(hint: Any, raw: str) -> Any:
    if typing.get_origin(hint) is tuple:
        text = raw.strip()
        if text.startswith("["):
            try:
                return tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return raw
        return [part.strip() for part in text.split(",") if part.strip()]
    if hint is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def _coerce(key: str, source: str, hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is float:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            with contextlib.suppress(ValueError):
                value = [float(v) for v in value]  # from an environment variable
        numbers = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        )
        if not numbers:
            raise ConfigError(key, source, "must be a list of numbers")
        return tuple(float(v) for v in value)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, source, "must be a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, source, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, source, "must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, source, "must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, source, "must be a string")
        return value
    raise ConfigError(key, source, f"unsupported type {hint}")  # pragma: no cover
