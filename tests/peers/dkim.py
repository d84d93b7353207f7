"""A DKIM signing key for tests and benchmarks, with the TXT record to publish."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class DkimKey:
    private_pem: bytes
    record: str

    def sign(self, raw: bytes, domain: str, selector: str = "s1", **kwargs: object) -> bytes:
        signature = dkim.sign(raw, selector.encode(), domain.encode(), self.private_pem, **kwargs)
        return bytes(signature) + raw


def make_dkim_key(bits: int = 2048) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
