"""The secret key file and encryption of secrets at rest (MultiFernet, rotatable).

The key file holds one Fernet key per line, newest first; GATEWAY_SECRET_KEYS
(comma-separated) replaces it. Encryption uses the first key, decryption
tries them all, so keys rotate by adding a new first line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.errors import ConfigError

ENV_KEYS = "GATEWAY_SECRET_KEYS"


def ensure_key_file(path: Path) -> bool:
    """Create the key file (mode 0600) if absent; True when created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode("ascii") + "\n")
    return True


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("secret key", ENV_KEYS, "no key given")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise ConfigError("secret key", ENV_KEYS, "not a valid Fernet key") from exc
        self._newest = keys[0]

    @classmethod
    def load(cls, path: Path, environ: dict[str, str] | None = None) -> Vault:
        env = os.environ if environ is None else environ
        if env.get(ENV_KEYS):
            return cls([k.strip().encode() for k in env[ENV_KEYS].split(",") if k.strip()])
        try:
            lines = path.read_text(encoding="ascii").split()
        except OSError as exc:
            raise ConfigError("secret key", str(path), f"cannot read: {exc.strerror}") from exc
        return cls([line.encode() for line in lines])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ConfigError("secret key", ENV_KEYS, "cannot decrypt: wrong key") from exc

    def derive(self, purpose: str) -> bytes:
        """A key of its own for `purpose` (e.g. signing API cursors), derived from the
        newest key: the same on every node that shares the key file."""
        return hmac.new(self._newest, f"gateway {purpose}".encode(), hashlib.sha256).digest()

    def rotate(self, token: str) -> str:
        """Re-encrypt `token` under the newest key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")
