"""config.example.toml, rendered from the schema: every key, its default and its doc."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.config.model import SECTIONS


def render_example() -> str:
    """The text of config.example.toml: every key, its default and what it does."""
    lines = [
        "# CRM Email Gateway configuration.",
        "# Every key is shown with its default. Any key can be overridden by an",
        "# environment variable GATEWAY_<TABLE>__<KEY>, e.g. GATEWAY_DATABASE__URL.",
        "# Lists in environment variables: TOML syntax or comma-separated.",
    ]
    for table, cls in SECTIONS.items():
        lines += ["", f"[{table}]"]
        doc = (cls.__doc__ or "").strip()
        if doc:
            lines.append(f"# {doc}")
        default = cls()
        for f in dataclasses.fields(cls):
            for chunk in _wrap(f.metadata.get("doc", "")):
                lines.append(f"# {chunk}")
            lines.append(f"{f.name} = {_toml_value(getattr(default, f.name))}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 76) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))  # pragma: no cover
