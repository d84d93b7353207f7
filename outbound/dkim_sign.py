"""DKIM-sign outgoing mail: dkimpy canonicalises and hashes, OpenSSL signs.

dkimpy does RSA in pure Python (about 99 RSA-2048 signatures a second here); the
cryptography package's OpenSSL does the same signature about ten times faster.
So the signature header is built as dkimpy builds it (its message parser, its
relaxed header canonicalisation and `hash_headers`; the body's canonical form as
dkimpy's gives it, computed here faster), and only the last step, the signature
over the header hash, goes to OpenSSL. Every signature is then checked
by unmodified dkimpy against the public key we hold, before the message may leave.

Policy: relaxed/relaxed, sha256 only (never sha1), never l=; signed: From (twice:
oversigned, so no second From can be added), To, Cc, Subject, Date, Message-ID,
In-Reply-To, References and the MIME headers present. Mail is signed only with
keys of the sending account for the From domain: never a d= it does not own.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Sequence

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from gateway.errors import GatewayError
from outbound.dkim_keys import SigningKey, txt_value

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
_POLICY = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_NAME = b"DKIM-Signature"


class SigningError(GatewayError):
    """A signature that dkimpy does not verify: the message must not leave."""


class Signer:
    """Signs with OpenSSL keys loaded once per key (a PEM parse costs more than a
    signature)."""

    def __init__(self) -> None:
        self._loaded: dict[str, _Private] = {}
        self._lock = threading.Lock()

    def sign(self, raw: bytes, keys: Sequence[SigningKey], now: int | None = None) -> bytes:
        """`raw` with one DKIM-Signature per key prepended, each verified by dkimpy."""
        if not keys:
            return raw
        stamp = int(time.time()) if now is None else now
        message = dkim.DKIM(raw)  # dkimpy's parse, once for every key
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(message.body)).digest())
        signatures = b"".join(self._signature(message, body_hash, key, stamp) for key in keys)
        signed = signatures + raw
        verify(signed, keys)
        return signed

    def _signature(self, message: dkim.DKIM, body_hash: bytes, key: SigningKey, now: int) -> bytes:
        present = {name.lower() for name, _ in message.headers}
        include = [h for h in SIGNED_HEADERS if h in present] + [b"from"]
        algorithm = b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", key.domain.encode("ascii")),
            (b"s", key.selector.encode("ascii")),
            (b"t", str(now).encode("ascii")),
            (b"h", b" : ".join(include)),  # spaces: fold may break lines only there
            (b"bh", body_hash),
            (b"b", b""),
        ]
        unsigned = (_NAME, b" " + b"; ".join(b"=".join(f) for f in fields))
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher,
            _POLICY,
            _POLICY.canonicalize_headers(message.headers),
            include,
            unsigned,
            dict(fields),
        )
        signature = self._private(key).sign_digest(hasher.digest())
        fields[-1] = (b"b", base64.b64encode(signature))
        value = b"; ".join(b"=".join(f) for f in fields)
        folded: bytes = dkim.fold(value, namelen=len(_NAME) + 2)
        return _NAME + b": " + folded + b"\r\n"

    def _private(self, key: SigningKey) -> _Private:
        with self._lock:
            loaded = self._loaded.get(key.private_pem)
            if loaded is None:
                loaded = _Private(key.private_pem)
                self._loaded[key.private_pem] = loaded
            return loaded


_WSP_RUN = re.compile(rb"\t[\t ]*| [\t ]+")  # what is not already one space


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, as dkimpy's Relaxed.canonicalize_body computes it (a test holds
    the two equal on generated bodies), several times faster: spaces and tabs before
    each CRLF are stripped line by line rather than by a regular expression tried at
    every space, and only runs that are not already one space are replaced. Each
    signature is verified by unmodified dkimpy all the same."""
    lines = body.split(b"\r\n")
    last = lines.pop()  # after the last CRLF: nothing to strip (no CRLF follows it)
    lines = [line.rstrip(b" \t") for line in lines]
    lines.append(last)
    body = b"\r\n".join(lines)
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    if end == len(body):
        return body + b"\r\n" if body else body
    return body[: end + 2] if end > 0 else b""


class _Private:
    def __init__(self, pem: str) -> None:
        self.key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)

    def sign_digest(self, digest: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the headers
        raise SigningError(f"unsupported key type {type(self.key).__name__}")


def verify(signed: bytes, keys: Sequence[SigningKey]) -> None:
    """Check every signature of `signed` with dkimpy against the public keys we hold
    (not DNS: what matters here is that our signature is right); SigningError else."""
    records = {
        f"{k.selector}._domainkey.{k.domain}.".encode("ascii"): txt_value(
            k.algorithm, k.public_b64
        ).encode("ascii")
        for k in keys
    }

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name if name.endswith(b".") else name + b".")

    checker = dkim.DKIM(signed)
    for index in range(len(keys)):
        try:
            good = checker.verify(idx=index, dnsfunc=lookup)
        except dkim.DKIMException as exc:
            raise SigningError(f"signature {index + 1} does not verify: {exc}") from exc
        if not good:
            raise SigningError(f"signature {index + 1} does not verify")
