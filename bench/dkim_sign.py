"""Benchmark: DKIM signing of 10 KB messages, against dkimpy's bare signing.

In the same run:
  - dkimpy:  dkim.sign() with an RSA-2048 key (its RSA in pure Python), the baseline;
  - gateway: outbound.dkim_sign.Signer (dkimpy's canonicalisation and header hash,
             OpenSSL's RSA), each signature then verified by dkimpy before it may
             leave, as the delivery role does;
  - gateway, RSA + ed25519: both signatures on every message, both verified.
Prints messages/s and the ratio to dkimpy. The issue's end-to-end figure
(submission -> sign -> relay into a sink) needs the delivery role.

    .venv/bin/python -m bench.dkim_sign --messages 300
"""

from __future__ import annotations

import argparse
import random
import time

import dkim
from rich.console import Console
from rich.table import Table

from outbound.dkim_keys import SigningKey, new_key_pair
from outbound.dkim_sign import SIGNED_HEADERS, Signer


def messages(count: int, size: int = 10_000) -> list[bytes]:
    rng = random.Random(1)
    words = ["offer", "price", "meeting", "thanks", "regards", "invoice", "contract", "call"]
    out = []
    for n in range(count):
        body = " ".join(rng.choice(words) for _ in range(size // 7))
        lines = "\r\n".join(body[i : i + 70] for i in range(0, len(body), 70))
        out.append(
            (
                f"From: Bob <bob@acme.com>\r\nTo: carol{n}@client.com\r\nSubject: offer {n}\r\n"
                f"Date: Tue, 1 Dec 2026 09:05:00 +0100\r\nMessage-ID: <m{n}@acme.com>\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{lines}\r\n"
            ).encode()
        )
    return out


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    mail = messages(args.messages)
    rsa = new_key_pair("rsa")
    ed = new_key_pair("ed25519")
    rsa_key = SigningKey("acme.com", "s1", "rsa", rsa.private_pem, rsa.public_b64)
    ed_key = SigningKey("acme.com", "s2", "ed25519", ed.private_pem, ed.public_b64)
    include = list(SIGNED_HEADERS)

    started = time.perf_counter()
    for raw in mail:
        dkim.sign(
            raw,
            b"s1",
            b"acme.com",
            rsa.private_pem.encode(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
    base = time.perf_counter() - started

    rows = [("dkimpy dkim.sign (RSA-2048)", base)]
    for name, keys in (
        ("gateway Signer, RSA-2048, verified", [rsa_key]),
        ("gateway Signer, RSA-2048 + ed25519, both verified", [rsa_key, ed_key]),
    ):
        signer = Signer()
        started = time.perf_counter()
        for raw in mail:
            signer.sign(raw, keys)
        rows.append((name, time.perf_counter() - started))

    table = Table(
        "signer", "messages/s", "/ dkimpy", title=f"DKIM signing, {args.messages} x 10 KB"
    )
    for name, seconds in rows:
        table.add_row(name, rate(args.messages, seconds), f"{base / seconds:.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
