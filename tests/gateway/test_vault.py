"""Secrets at rest: the key file and rotation."""

from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from gateway.errors import ConfigError
from gateway.vault import Vault, ensure_key_file


def test_key_file_is_private_and_made_once(tmp_path):
    path = tmp_path / "var" / "secret.key"
    assert ensure_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert ensure_key_file(path) is False and path.read_text() == first


def test_encrypt_decrypt_and_rotate(tmp_path):
    path = tmp_path / "secret.key"
    ensure_key_file(path)
    old = Vault.load(path, environ={})
    token = old.encrypt("hunter2")
    assert "hunter2" not in token and old.decrypt(token) == "hunter2"
    new_key = Fernet.generate_key().decode()
    path.write_text(new_key + "\n" + path.read_text())
    rotated = Vault.load(path, environ={})
    assert rotated.decrypt(token) == "hunter2"
    assert Vault([new_key.encode()]).decrypt(rotated.rotate(token)) == "hunter2"
    with pytest.raises(ConfigError, match="wrong key"):
        Vault([Fernet.generate_key()]).decrypt(token)


def test_keys_from_the_environment(tmp_path):
    key = Fernet.generate_key().decode()
    vault = Vault.load(tmp_path / "absent", environ={"GATEWAY_SECRET_KEYS": key})
    assert vault.decrypt(vault.encrypt("x")) == "x"
    with pytest.raises(ConfigError, match="cannot read"):
        Vault.load(tmp_path / "absent", environ={})
