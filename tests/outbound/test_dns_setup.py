"""DNS setup of a sending domain against the tests' DNS server (twisted.names): the
records to publish (SPF merged, never a second one; DKIM split in strings; DMARC
with the report address and its authorization; the dropbox's MX) and the live
checks, a zone for each case, with DNS failures reported as unknown, never failed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.accounts import get_account
from gateway.config import Config, DnsConfig
from gateway.db import Database
from gateway.models import DkimKey, SendingDomain
from gateway.resolver import Resolver
from gateway.vault import Vault, ensure_key_file
from outbound.dkim_keys import rotate, txt_value
from outbound.dns_checks import check_mx
from outbound.sending_domains import add_domain, check, mx_record, records, zone_file
from tests.peers.dns import ZoneServer

DOMAIN = "acme.example"
IP = "203.0.113.25"
GOOD_SPF = f"v=spf1 ip4:{IP} ~all"
GOOD_DMARC = "v=DMARC1; p=none; rua=mailto:dmarc-reports@dropbox.gw.example"


class Setup:
    def __init__(self, db: Database, config: Config, zone: ZoneServer, account_id: int) -> None:
        self.db, self.config, self.zone, self.account_id = db, config, zone, account_id
        self.vault = Vault.load(config.secret_key_file)
        with db.session() as session:
            add_domain(session, self.vault, get_account(session, None), DOMAIN)
        self.key = self.keys()[0]
        self.all_correct()

    def keys(self) -> list[DkimKey]:
        with self.db.read() as session:
            return list(session.query(DkimKey).filter_by(domain=DOMAIN, state="active"))

    @property
    def dkim_name(self) -> str:
        return f"{self.key.selector}._domainkey.{DOMAIN}"

    @property
    def dkim_value(self) -> str:
        return txt_value(self.key.algorithm, self.key.public_key)

    def all_correct(self) -> None:
        self.zone.clear()
        self.zone.set(DOMAIN, "TXT", GOOD_SPF)
        self.zone.set(self.dkim_name, "TXT", self.dkim_value)
        self.zone.set(f"_dmarc.{DOMAIN}", "TXT", GOOD_DMARC)
        self.zone.set("dropbox.gw.example", "MX", (10, "mx.gw.example"))

    def check(self) -> dict[str, tuple[str, str]]:
        """{record kind: (status, words)} of a check now."""
        done = check(self.db, self.config, self.vault, self.account_id, DOMAIN)
        return {f.kind: (f.status, f.words + " " + f.fix) for f in done.findings}

    def records(self) -> dict[str, list[object]]:
        resolver = Resolver(self.config.dns)
        with self.db.read() as session:
            row = session.query(SendingDomain).filter_by(domain=DOMAIN).one()
            found = records(session, self.config, resolver, row)
        out: dict[str, list[object]] = {}
        for record in found:
            out.setdefault(record.kind, []).append(record)
        return out


@pytest.fixture
def setup(
    db: Database, config: Config, zone_server: ZoneServer, account_id: int, tmp_path: Path
) -> Iterator[Setup]:
    ensure_key_file(config.secret_key_file)
    config = replace(
        config,
        dns=DnsConfig(nameservers=(zone_server.address,), timeout=1.0),
        outbound=replace(config.outbound, sending_ips=(IP,), helo_name="mx.gw.example"),
        dropbox=replace(config.dropbox, domain="dropbox.gw.example", hostname="mx.gw.example"),
    )
    yield Setup(db, config, zone_server, account_id)
    zone_server.clear()


def test_adding_a_domain_makes_its_dkim_key(setup: Setup) -> None:
    assert len(setup.keys()) == 1 and setup.key.algorithm == "rsa"


def test_all_correct(setup: Setup) -> None:
    found = setup.check()
    assert {k: s for k, (s, _) in found.items()} == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}
    assert f"SPF allows {IP}" in found["spf"][1] and "matched ip4:203.0.113.25" in found["spf"][1]
    assert "a message signed now verifies" in found["dkim"][1]
    assert check_mx(setup.config, Resolver(setup.config.dns)).status == "pass"
    with setup.db.read() as session:
        row = session.query(SendingDomain).one()
        assert row.status == "pass" and row.checked_at is not None and row.failures == 0


def test_no_spf(setup: Setup) -> None:
    setup.zone.set(DOMAIN, "A", "192.0.2.1")
    setup.zone.zone.records.pop((DOMAIN, "TXT"))
    status, words = setup.check()["spf"]
    assert status == "fail" and f"{DOMAIN} has no SPF record" in words
    (spf,) = setup.records()["spf"]
    assert spf.value == f"v=spf1 ip4:{IP} ~all"  # type: ignore[attr-defined]


def test_two_spf_records(setup: Setup) -> None:
    setup.zone.set(DOMAIN, "TXT", GOOD_SPF, "v=spf1 include:_spf.google.com -all")
    status, words = setup.check()["spf"]
    assert status == "fail" and "2 SPF records" in words and "permerror" in words
    (spf,) = setup.records()["spf"]
    assert spf.value == f"v=spf1 ip4:{IP} include:_spf.google.com ~all"  # type: ignore[attr-defined]
    assert any("2 SPF records" in n for n in spf.notes)  # type: ignore[attr-defined]


def test_spf_over_ten_lookups(setup: Setup) -> None:
    includes = " ".join(f"include:s{i}.acme.example" for i in range(11))
    setup.zone.set(DOMAIN, "TXT", f"v=spf1 {includes} ip4:{IP} -all")
    for i in range(11):
        setup.zone.set(f"s{i}.acme.example", "TXT", "v=spf1 -all")
    status, words = setup.check()["spf"]
    assert status == "fail" and "permerror" in words
    (spf,) = setup.records()["spf"]
    assert any("11 DNS-querying terms" in n for n in spf.notes)  # type: ignore[attr-defined]


def test_spf_without_our_ip_and_the_merge(setup: Setup) -> None:
    setup.zone.set(DOMAIN, "TXT", "v=spf1 include:_spf.google.com -all")
    setup.zone.set("_spf.google.com", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    status, words = setup.check()["spf"]
    assert status == "fail" and f"does not allow {IP}" in words and f"ip4:{IP}" in words
    (spf,) = setup.records()["spf"]
    # Merged into the existing record, before its `all`: never a second record.
    assert spf.value == f"v=spf1 include:_spf.google.com ip4:{IP} -all"  # type: ignore[attr-defined]
    assert spf.found == ["v=spf1 include:_spf.google.com -all"]  # type: ignore[attr-defined]


def test_dkim_missing_and_stale(setup: Setup) -> None:
    setup.zone.zone.records.pop((setup.dkim_name, "TXT"))
    setup.zone.set(setup.dkim_name, "A", "192.0.2.1")
    status, words = setup.check()["dkim"]
    assert status == "fail" and "No DKIM record" in words
    with setup.db.session() as session:
        new, _old = rotate(session, setup.vault, get_account(session, None), DOMAIN)
        stale_name = f"{new.selector}._domainkey.{DOMAIN}"
    setup.zone.set(stale_name, "TXT", setup.dkim_value)  # the old key under the new name
    status, words = setup.check()["dkim"]
    assert status == "fail" and "publishes another key" in words
    # During the rotation both keys are to be published, the old one with a note.
    dkim = setup.records()["dkim"]
    assert len(dkim) == 2
    assert any("gateway dkim remove" in n for r in dkim for n in r.notes)  # type: ignore[attr-defined]


def test_dkim_split_across_strings_and_by_cname(setup: Setup) -> None:
    value = setup.dkim_value
    parts = (value[:40], value[40:200], value[200:])  # any split: the strings are joined
    setup.zone.set(setup.dkim_name, "TXT", parts)
    assert setup.check()["dkim"][0] == "pass"
    setup.zone.zone.records.pop((setup.dkim_name, "TXT"))
    setup.zone.set(setup.dkim_name, "CNAME", "acme.dkim.provider.example")
    setup.zone.set("acme.dkim.provider.example", "TXT", value)
    assert setup.check()["dkim"][0] == "pass"
    (dkim,) = setup.records()["dkim"]
    assert all(len(s) <= 255 for s in dkim.strings) and "".join(dkim.strings) == value  # type: ignore[attr-defined]


def test_dmarc_missing_and_strict_reject(setup: Setup) -> None:
    setup.zone.zone.records.pop((f"_dmarc.{DOMAIN}", "TXT"))
    setup.zone.set(f"_dmarc.{DOMAIN}", "A", "192.0.2.1")
    status, words = setup.check()["dmarc"]
    assert status == "fail" and "no DMARC record" in words
    dmarc = setup.records()
    (record,) = dmarc["dmarc"]
    assert record.value.startswith("v=DMARC1; p=none; rua=mailto:dmarc-reports@dropbox.gw.example")  # type: ignore[attr-defined]
    (authorization,) = dmarc["dmarc-authorization"]
    assert authorization.name == f"{DOMAIN}._report._dmarc.dropbox.gw.example"  # type: ignore[attr-defined]
    setup.zone.set(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")
    status, words = setup.check()["dmarc"]
    assert status == "warn" and "p=reject" in words and "strict alignment" in words
    assert "mailto:dmarc-reports@dropbox.gw.example" in words  # how to get reports here


def test_mx_elsewhere(setup: Setup) -> None:
    setup.zone.set("dropbox.gw.example", "MX", (10, "mail.elsewhere.example"))
    found = check_mx(setup.config, Resolver(setup.config.dns))
    assert found.status == "fail"
    assert "currently set to mail.elsewhere.example but should be mx.gw.example" in found.words
    record = mx_record(setup.config, Resolver(setup.config.dns))
    assert record.value == "10 mx.gw.example." and record.found == ["10 mail.elsewhere.example."]


@pytest.mark.parametrize("fault", ["SERVFAIL", "TIMEOUT"])
def test_dns_failures_are_unknown_not_failed(setup: Setup, fault: str) -> None:
    setup.check()
    setup.zone.clear()
    for name in (DOMAIN, setup.dkim_name, f"_dmarc.{DOMAIN}"):
        setup.zone.set(name, fault)
    found = setup.check()
    assert {s for s, _ in found.values()} == {"unknown"}, found
    assert "not a failure" in found["dkim"][1]
    with setup.db.read() as session:
        row = session.query(SendingDomain).one()
        assert row.status == "unknown" and row.failures == 0


def test_failures_in_a_row_are_counted(setup: Setup) -> None:
    setup.zone.set(DOMAIN, "TXT", "v=spf1 -all")
    for expected in (1, 2):
        assert check(setup.db, setup.config, setup.vault, setup.account_id, DOMAIN).failures == (
            expected
        )
    setup.zone.set(DOMAIN, "SERVFAIL")
    assert check(setup.db, setup.config, setup.vault, setup.account_id, DOMAIN).failures == 2
    setup.all_correct()
    assert check(setup.db, setup.config, setup.vault, setup.account_id, DOMAIN).failures == 0


def test_the_zone_file(setup: Setup) -> None:
    found = setup.records()
    text = zone_file([r for rows in found.values() for r in rows])  # type: ignore[misc]
    assert f'{DOMAIN}. 3600 IN TXT "v=spf1 ip4:{IP} ~all"' in text
    assert f"{setup.dkim_name}. 3600 IN TXT" in text and '" "' in text  # split strings
    assert f"_dmarc.{DOMAIN}. 3600 IN TXT" in text


def test_lookup_terms_are_counted_as_receivers_count_them() -> None:
    from outbound.dns_records import lookup_terms

    assert lookup_terms("v=spf1 a mx ptr include:x.example a:y.example mx/24 -all") == 6
    assert lookup_terms("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 ~all") == 0
    assert lookup_terms("v=spf1 exists:%{i}.x.example redirect=_spf.example") == 2
