"""The documentation of a key: its text, and the values it may take (checked at load)."""

from __future__ import annotations

from typing import Any


def doc(text: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"doc": text, "choices": choices}
