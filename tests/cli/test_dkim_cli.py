"""`gateway dkim generate|list|rotate|remove|record`."""

from __future__ import annotations

import re

from tests.helpers.cli import Run


def test_the_dkim_commands(initialized: Run) -> None:
    created = initialized("dkim", "generate", "acme.com", "--selector", "s1")
    assert created.code == 0, created.err
    assert 's1._domainkey.acme.com. IN TXT ( "v=DKIM1; k=rsa; p=' in created.out
    assert initialized("dkim", "generate", "acme.com").code != 0  # one active RSA key
    assert initialized("dkim", "generate", "acme.com", "--algorithm", "ed25519").code == 0
    rotated = initialized("dkim", "rotate", "acme.com", "--selector", "s3")
    assert rotated.code == 0 and "s1 is retired" in rotated.out
    listed = initialized("dkim", "list", "--json").out
    assert '"selector": "s1"' in listed and '"state": "retired"' in listed
    records = initialized("dkim", "record", "acme.com").out
    assert records.count("._domainkey.acme.com. IN TXT") == 3
    assert "k=ed25519" in records
    assert initialized("dkim", "remove", "acme.com", "s1").code == 0
    assert "s1._domainkey" not in initialized("dkim", "record", "acme.com").out
    assert initialized("dkim", "record", "nowhere.example").code == 1
    long_value: list[str] = re.findall(r'"([^"]*)"', records)
    assert all(len(chunk) <= 255 for chunk in long_value)
