"""Config: file, environment overrides, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.source == "defaults"
    assert config.database_url == f"sqlite:///{tmp_path / 'var' / 'gateway.db'}"


def test_file_values_and_relative_paths(tmp_path):
    path = write(tmp_path, '[paths]\nvar_dir = "state"\n[contacts]\nblocked_domains = ["x.com"]\n')
    config = load_config(path, environ={})
    assert config.var_dir == tmp_path / "state"
    assert config.contacts.blocked_domains == ("x.com",)


def test_environment_overrides_every_type(tmp_path):
    path = write(tmp_path, "[pipeline]\nbatch_size = 5\n")
    config = load_config(
        path,
        environ={
            "GATEWAY_PIPELINE__BATCH_SIZE": "7",
            "GATEWAY_PIPELINE__POLL_INTERVAL": "0.5",
            "GATEWAY_DATABASE__URL": "postgresql+psycopg://u@h/db",
            "GATEWAY_CONTACTS__BLOCKED_DOMAINS": "a.com, b.com",
            "GATEWAY_CONTACTS__EXCLUDED_LOCAL_PARTS": '["x*"]',
        },
    )
    assert config.pipeline.batch_size == 7
    assert config.pipeline.poll_interval == 0.5
    assert config.database_url == "postgresql+psycopg://u@h/db"
    assert config.contacts.blocked_domains == ("a.com", "b.com")
    assert config.contacts.excluded_local_parts == ("x*",)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[nope]\nx = 1\n", "nope", "unknown table"),
        ("[paths]\nvardir = 'x'\n", "paths.vardir", "unknown key"),
        ("[pipeline]\nbatch_size = 'ten'\n", "pipeline.batch_size", "must be an integer"),
        ("[pipeline]\nbatch_size = 0\n", "pipeline.batch_size", "at least 1"),
        ("[addresses]\nlocal_part_case = 'upper'\n", "addresses.local_part_case", "one of"),
        ("[dropbox]\naddress_format = 'bcc'\n", "dropbox.address_format", "{token}"),
        ("[serve]\nroles = ['nope']\n", "serve.roles", "unknown role"),
        ("[calendar]\ninterval = 1\n", "calendar.interval", "at least 10"),
        ("[calendar]\ndays_ahead = -1\n", "calendar.days_ahead", "from 0 to 3650"),
        ("[calendar]\npage_days = 0\n", "calendar.page_days", "from 1 to 3650"),
        ("[calendar]\ngraph_url = 'graph.microsoft.com'\n", "calendar.graph_url", "URL"),
        ("[database]\nurl = 'mysql://x'\n", "database.url", "sqlite"),
        ("[paths\n", "(file)", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.key == key
    assert caught.value.source == str(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_bad_environment_values_name_the_variable(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"GATEWAY_PIPELINE__BATCH_SIZE.*integer"):
        load_config(path, environ={"GATEWAY_PIPELINE__BATCH_SIZE": "many"})
    with pytest.raises(ConfigError, match=r"GATEWAY_PIPELINE__NOPE.*unknown key"):
        load_config(path, environ={"GATEWAY_PIPELINE__NOPE": "1"})
    with pytest.raises(ConfigError, match=r"GATEWAY_NOPE__X.*unknown table"):
        load_config(path, environ={"GATEWAY_NOPE__X": "1"})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml", environ={})


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("GATEWAY_DROPBOX__POLICY", "nonsense", "dropbox.policy"),  # a choice
        ("GATEWAY_WEB__LISTEN", "no-port", "web.listen"),  # an address
        ("GATEWAY_IMAP__BATCH_SIZE", "0", "imap.batch_size"),  # a range
        ("GATEWAY_DROPBOX__TRUSTED_NETWORKS", "10.0.0.0/33", "dropbox.trusted_networks"),
    ],
)
def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, variable: str, value: str, key: str
) -> None:
    file = tmp_path / "config.toml"
    file.write_text('[dropbox]\npolicy = "verify"\n[web]\nlisten = "127.0.0.1:8080"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={variable: value})
    assert str(caught.value).startswith(f"config error in environment variable {variable}: {key}:")
    # The same value from the file names the file.
    table, name = key.split(".")
    listed = f'["{value}"]' if name == "trusted_networks" else repr(value)
    if name == "batch_size":
        listed = value
    file.write_text(f"[{table}]\n{name} = {listed}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert str(caught.value).startswith(f"config error in {file}: {key}:")
