"""`gateway domain add|list|remove` and `gateway dns records|check` against the tests'
DNS server: the table and --json, and the exit status scripts rely on."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.cli import Run
from tests.peers.dns import ZoneServer


def test_domains_and_their_dns(
    initialized: Run, config_file: Path, zone_server: ZoneServer
) -> None:
    with config_file.open("a", encoding="utf-8") as handle:
        handle.write(
            f'[dns]\nnameservers = ["{zone_server.address}"]\ntimeout = 1.0\n'
            '[outbound]\nsending_ips = ["203.0.113.25"]\n'
        )
    zone_server.clear()
    assert initialized("domain", "add", "Acme.Example").code == 0
    again = initialized("domain", "add", "acme.example")
    assert again.code != 0 and "already a sending domain" in again.err
    zone = initialized("dns", "records", "acme.example").out
    assert 'acme.example. 3600 IN TXT "v=spf1 ip4:203.0.113.25 ~all"' in zone
    dkim = re.search(r"(\S+)\._domainkey\.acme\.example\. 3600 IN TXT ((?:\"[^\"]*\" ?)+)", zone)
    assert dkim, zone
    assert "dropbox.localhost. 3600 IN MX 10 localhost." in zone
    # Nothing published yet: the check fails, and says so in its exit status.
    failed = initialized("dns", "check", "acme.example", "--json")
    assert failed.code == 1
    assert failed.json()["status"] == "fail"
    selector = dkim.group(1)
    value = "".join(re.findall(r'"([^"]*)"', dkim.group(2)))
    zone_server.set("acme.example", "TXT", "v=spf1 ip4:203.0.113.25 ~all")
    zone_server.set(f"{selector}._domainkey.acme.example", "TXT", value)
    zone_server.set(
        "_dmarc.acme.example", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc-reports@dropbox.localhost"
    )
    zone_server.set("dropbox.localhost", "MX", (10, "localhost"))
    table = initialized("dns", "check", "acme.example")
    assert table.code == 0, table.out
    assert "what to change" in table.out  # the table's header
    passed = initialized("dns", "check", "acme.example", "--json").json()
    assert passed["status"] == "pass"
    assert [(c["kind"], c["status"]) for c in passed["checks"]] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("mx", "pass"),
    ]
    listed = initialized("domain", "list", "--json").json()
    assert listed[0]["domain"] == "acme.example" and listed[0]["status"] == "pass"
    assert initialized("domain", "remove", "acme.example").code == 0
    assert initialized("domain", "list", "--json").json() == []
    zone_server.clear()
