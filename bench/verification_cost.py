"""Benchmark: the cost of dropbox sender verification (SPF + DKIM + DMARC) per message,
against a loopback DNS zone server (twisted.names), with and without the
resolver's cache.

    .venv/bin/python -m bench.verification_cost --messages 500
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from gateway.config import DnsConfig
from gateway.resolver import Resolver
from inbound.verification import SenderVerifier
from tests.peers.dkim import make_dkim_key
from tests.peers.dns import ZoneServer

BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n" * 135


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    key = make_dkim_key()
    zone = ZoneServer()
    zone.set("acme.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone.set("_dmarc.acme.example", "TXT", "v=DMARC1; p=reject")
    zone.set("s1._domainkey.acme.example", "TXT", key.record)
    raws = []
    for i in range(args.messages):
        raw = (
            f"From: Bob <bob@acme.example>\r\nTo: x@dropbox.example\r\nSubject: m{i}\r\n"
            f"Message-ID: <v{i}@acme.example>\r\n\r\n{BODY}"
        ).encode()
        raws.append(key.sign(raw, "acme.example"))
    console = Console()
    table = Table(
        "resolver",
        "messages",
        "verifications/s",
        "ms per message",
        title="dropbox sender verification (SPF + DKIM rsa-2048 + DMARC)",
    )
    for label, timeout in (("cached", 5.0), ("uncached", 5.0)):
        resolver = Resolver(DnsConfig(nameservers=(zone.address,), timeout=timeout))
        verifier = SenderVerifier(resolver)
        started = time.perf_counter()
        for raw in raws:
            if label == "uncached":
                resolver._resolver.cache = None  # every look-up goes to the server
            verdict = verifier.verify(
                "127.0.0.1", "mx.acme.example", "bob@acme.example", raw, "acme.example"
            )
            assert verdict.verifies("bob@acme.example")
        elapsed = time.perf_counter() - started
        table.add_row(
            label,
            str(len(raws)),
            f"{len(raws) / elapsed:,.0f}",
            f"{elapsed / len(raws) * 1000:.2f}",
        )
    console.print(table)
    zone.stop()


if __name__ == "__main__":
    main()
