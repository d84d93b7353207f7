"""The DNS setup page and /api/v1/domains over real HTTP, against the tests' DNS
server: add a domain, the records to publish with what DNS holds now, Check now,
the zone file, remove; admins only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from gateway.accounts import get_user, set_password
from gateway.config import Config, DnsConfig, SecurityConfig
from gateway.db import Database
from gateway.models import DkimKey
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from outbound.dkim_keys import txt_value
from tests.helpers.browser_session import Person
from tests.helpers.web import ApiClient, running_web
from tests.peers.dns import ZoneServer

PASSWORD = "a long enough password"


@dataclass
class Site:
    url: str
    db: Database
    zone: ZoneServer
    api: ApiClient
    people: list[Person] = field(default_factory=list)

    def person(self, email: str) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in(email, PASSWORD).status_code == 303
        return found

    def publish_all(self, domain: str) -> None:
        with self.db.read() as session:
            key = session.query(DkimKey).filter_by(domain=domain).one()
            name, value = f"{key.selector}._domainkey.{domain}", txt_value("rsa", key.public_key)
        self.zone.set(domain, "TXT", "v=spf1 ip4:203.0.113.25 ~all")
        self.zone.set(name, "TXT", value)
        self.zone.set(
            f"_dmarc.{domain}",
            "TXT",
            "v=DMARC1; p=none; rua=mailto:dmarc-reports@dropbox.gw.example",
        )


@pytest.fixture
def site(db: Database, config: Config, account_id: int, zone_server: ZoneServer) -> Iterator[Site]:
    ensure_key_file(config.secret_key_file)
    zone_server.clear()
    config = replace(
        config,
        dns=DnsConfig(nameservers=(zone_server.address,), timeout=1.0),
        outbound=replace(config.outbound, sending_ips=("203.0.113.25",)),
        dropbox=replace(config.dropbox, domain="dropbox.gw.example", hostname="mx.gw.example"),
    )
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        get_user(session, config, "ann@acme.com").is_admin = True
        tokens = {
            "admin": create_account_token(session, account_id, ["admin"]).token,
            "read": create_account_token(session, account_id, ["read"]).token,
        }
    with running_web(db, config) as url:
        found = Site(url, db, zone_server, ApiClient(url, tokens))
        try:
            yield found
        finally:
            for person in found.people:
                person.close()
            zone_server.clear()


def test_the_dns_page_from_adding_a_domain_to_all_good(site: Site) -> None:
    ann = site.person("ann@acme.com")
    empty = ann.get("/dns")
    assert empty.status_code == 200 and "No sending domain yet" in empty.text
    assert 'href="/dns"' in empty.text  # in the navigation
    assert "dropbox.gw.example has no MX record" in empty.text
    bad = ann.form("/dns", "/dns/domains", domain="not a domain")
    assert bad.status_code == 422 and "is not a domain name" in bad.text
    added = ann.form("/dns", "/dns/domains", domain="Acme.Example")
    assert added.headers["location"] == "/dns/acme.example?done=added"
    page = ann.get("/dns/acme.example?done=added").text
    assert "Not checked yet" in page
    assert "v=spf1 ip4:203.0.113.25 ~all" in page and "<code>@</code>" in page
    assert re.search(r"<code>gw\d{6}\._domainkey</code>", page)
    assert "_report._dmarc.dropbox.gw.example" in page
    assert "Found in DNS</dt><dd>nothing" in page
    checked = ann.form("/dns/acme.example", "/dns/acme.example/check")
    assert checked.headers["location"] == "/dns/acme.example?done=checked"
    failing = ann.get("/dns/acme.example").text
    assert "Needs fixing" in failing and "acme.example has no SPF record" in failing
    assert "To do: Publish the SPF record shown." in failing
    site.publish_all("acme.example")
    ann.form("/dns/acme.example", "/dns/acme.example/check")
    good = ann.get("/dns/acme.example").text
    assert "All good" in good and "SPF allows 203.0.113.25" in good
    assert 'Found in DNS</dt><dd><code class="value">v=spf1 ip4:203.0.113.25 ~all' in good
    listed = ann.get("/dns").text
    assert 'href="/dns/acme.example"' in listed and "All good" in listed
    zone = ann.get("/dns/acme.example/zone")
    assert zone.headers["content-disposition"] == 'attachment; filename="acme.example.zone"'
    assert 'acme.example. 3600 IN TXT "v=spf1 ip4:203.0.113.25 ~all"' in zone.text
    assert "dropbox.gw.example. 3600 IN MX 10 mx.gw.example." in zone.text
    removed = ann.form("/dns/acme.example", "/dns/acme.example/remove")
    assert removed.headers["location"] == "/dns?done=removed"
    assert ann.get("/dns/acme.example").status_code == 404


def test_members_see_no_dns_page(site: Site) -> None:
    bob = site.person("bob@acme.com")
    assert bob.get("/dns").status_code == 403
    assert 'href="/dns"' not in bob.get("/").text
    assert bob.form("/", "/dns/domains", domain="acme.example").status_code == 403


def test_the_domains_api(site: Site) -> None:
    api = site.api
    assert api.call("POST", "/domains", "read", json={"domain": "acme.example"}).status_code == 403
    made = api.call("POST", "/domains", "admin", json={"domain": "acme.example"})
    assert made.status_code == 201 and made.json()["status"] == "unchecked"
    taken = api.call("POST", "/domains", "admin", json={"domain": "ACME.example."})
    assert taken.status_code == 409
    detail = api.call("GET", "/domains/acme.example", "admin").json()
    kinds = [r["kind"] for r in detail["records"]]
    assert kinds == ["spf", "dkim", "dmarc", "dmarc-authorization", "mx"]
    dkim = detail["records"][1]
    assert all(len(s) <= 255 for s in dkim["strings"]) and len(dkim["strings"]) == 2
    site.publish_all("acme.example")
    checked = api.call("POST", "/domains/acme.example/check", "admin").json()
    assert [(c["kind"], c["status"]) for c in checked["checks"]] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("mx", "fail"),
    ]
    assert checked["status"] == "fail"
    listed = api.call("GET", "/domains", "admin").json()["data"]
    assert listed[0]["status"] == "pass" and listed[0]["checked_at"]
    assert api.call("DELETE", "/domains/acme.example", "admin").status_code == 204
    assert api.call("GET", "/domains/acme.example", "admin").status_code == 404


def test_the_periodic_recheck_raises_and_clears_the_banner_and_the_webhook(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer
) -> None:
    from admin.webhook_delivery import Dispatcher
    from gateway.models import Account, Event, SendingDomain, WebhookDelivery
    from gateway.vault import Vault
    from gateway.webhooks import add_endpoint
    from outbound.dns_role import DnsRole
    from outbound.sending_domains import add_domain

    ensure_key_file(config.secret_key_file)
    zone_server.clear()
    config = replace(
        config,
        dns=DnsConfig(nameservers=(zone_server.address,), timeout=1.0),
        outbound=replace(config.outbound, sending_ips=("203.0.113.25",)),
        dropbox=replace(config.dropbox, domain="dropbox.gw.example", hostname="mx.gw.example"),
        dns_checks=replace(config.dns_checks, interval=0.0, alert_after=2),
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),  # the endpoint
    )
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        get_user(session, config, "ann@acme.com").is_admin = True
        add_domain(session, vault, session.get_one(Account, account_id), "acme.example")
        add_endpoint(
            session, config, vault, account_id, "http://127.0.0.1:9/hook", ["domain.dns_failed"]
        )
    role = DnsRole(db, config)

    def dns_failed() -> list[Event]:
        with db.read() as session:
            return list(session.query(Event).filter_by(kind="domain.dns_failed"))

    with running_web(db, config) as url:
        site = Site(url, db, zone_server, ApiClient(url, {}))
        try:
            ann, bob = site.person("ann@acme.com"), site.person("bob@acme.com")
            assert role.pass_once() == 1  # nothing published: the first failure
            assert dns_failed() == [] and "keep failing" not in ann.get("/mailboxes").text
            # A DNS that does not answer neither counts nor clears.
            with db.read() as session:
                selector = session.query(DkimKey).one().selector
            for name in ("acme.example", f"{selector}._domainkey.acme.example"):
                zone_server.set(name, "SERVFAIL")
            zone_server.set("_dmarc.acme.example", "SERVFAIL")
            assert role.pass_once() == 1
            assert dns_failed() == []
            zone_server.clear()
            assert role.pass_once() == 1  # the second failure in a row: broken
            (event,) = dns_failed()
            assert event.payload["domain"] == "acme.example" and event.payload["failures"] == 2
            assert {c["kind"] for c in event.payload["checks"]} == {"spf", "dkim", "dmarc"}
            banner = ann.get("/mailboxes").text
            assert "acme.example's DNS records keep failing their checks" in banner
            assert 'href="/dns/acme.example">Fix DNS for acme.example' in banner
            assert "keep failing" not in bob.get("/mailboxes").text  # admins only
            Dispatcher(db, config).fan_out()
            with db.read() as session:
                (delivery,) = session.query(WebhookDelivery).all()
                assert delivery.event_type == "domain.dns_failed"
            role.pass_once()
            assert len(dns_failed()) == 1  # raised once, not at every failed check
            site.publish_all("acme.example")
            role.pass_once()
            assert "keep failing" not in ann.get("/mailboxes").text
            with db.read() as session:
                row = session.query(SendingDomain).one()
                assert row.status == "pass" and row.alerted_at is None and row.failures == 0
        finally:
            for person in site.people:
                person.close()
            zone_server.clear()


def test_a_domain_is_checked_once_per_interval(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer
) -> None:
    from gateway.models import Account
    from gateway.vault import Vault
    from outbound.dns_role import DnsRole
    from outbound.sending_domains import add_domain, due

    ensure_key_file(config.secret_key_file)
    config = replace(config, dns=DnsConfig(nameservers=(zone_server.address,), timeout=1.0))
    with db.session() as session:
        add_domain(
            session,
            Vault.load(config.secret_key_file),
            session.get_one(Account, account_id),
            "acme.example",
        )
    assert DnsRole(db, config).pass_once() == 1
    assert due(db, config) == []  # checked just now: not due for [dns_checks] interval


def test_the_dns_page_reads_the_dmarc_reports(site: Site) -> None:
    from gateway.dmarc_reports import parse, store
    from tests.peers.dmarc_reporters import google

    ann = site.person("ann@acme.com")
    ann.form("/dns", "/dns/domains", domain="acme.example")
    before = ann.get("/dns/acme.example").text
    assert "No reports about acme.example yet" in before
    assert "rua= names dmarc-reports@dropbox.gw.example" in before
    with site.db.session() as session:
        assert store(session, parse(google("acme.example"))) == "stored"
    page = ann.get("/dns/acme.example").text
    assert "98% aligned; 2% from 203.0.113.7" in page
    assert "1 report from google.com" in page and "<td>203.0.113.25</td><td>98</td>" in page
    assert "98% aligned" in ann.get("/dns/acme.example?days=7").text  # yesterday's
