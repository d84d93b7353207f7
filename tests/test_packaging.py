"""The repository's own files stay true: the example config documents every key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from gateway.config import Config, load_config, render_example

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_the_rendered_schema() -> None:
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert example == render_example(), "regenerate config.example.toml from gateway.config"


def test_example_config_loads_to_the_defaults(tmp_path) -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    defaults = Config()
    for field in dataclasses.fields(Config):
        if field.name not in ("base_dir", "source", "overrides"):
            assert getattr(config, field.name) == getattr(defaults, field.name)


def test_every_key_is_documented() -> None:
    data = tomllib.loads(render_example())
    for field in dataclasses.fields(Config):
        if field.name in ("base_dir", "source", "overrides"):
            continue
        section = getattr(Config(), field.name)
        assert set(data[field.name]) == {f.name for f in dataclasses.fields(section)}
        for f in dataclasses.fields(section):
            assert f.metadata.get("doc"), f"{field.name}.{f.name} has no documentation"
