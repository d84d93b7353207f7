"""CalDAV calendar sync against a real Radicale on loopback: the server found by RFC
6764 SRV, a first sync of the window, then added, changed and deleted events picked
up by sync-token (and by ctag and ETags for a server without tokens), and a changed
password leading to reconnect_required."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import Config, DnsConfig, SecurityConfig
from gateway.db import Database
from gateway.imap.connection import MailboxError
from gateway.models import Calendar, Event, Mailbox, Meeting, utcnow
from gateway.resolver import Resolver
from gateway.vault import Vault, ensure_key_file
from inbound.calendar.caldav_sync import Access, sync_caldav
from inbound.calendar.role import sync_calendars
from tests.helpers.mailboxes import mailbox_row
from tests.helpers.pipeline import contact, set_account
from tests.peers.dns import ZoneServer
from tests.peers.radicale import Radicale, event


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = Radicale(tmp_path / "radicale")
    server.set_password("bob", "secret")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cal_config(config: Config, zone_server: ZoneServer, radicale: Radicale) -> Config:
    ensure_key_file(config.secret_key_file)
    zone_server.clear()
    zone_server.set("_caldav._tcp.acme.com", "SRV", (0, 0, radicale.port, "localhost"))
    zone_server.set("_caldav._tcp.acme.com", "TXT", "path=/")
    zone_server.set("localhost", "A", "127.0.0.1")
    return replace(
        config,
        dns=DnsConfig(nameservers=(zone_server.address,), timeout=2.0),
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
    )


@pytest.fixture
def mailbox_id(db: Database, cal_config: Config, account_id: int) -> int:
    return mailbox_row(db, cal_config, "bob@acme.com", "secret", username="bob")


def sync(db: Database, config: Config, mailbox_id: int):
    vault = Vault.load(config.secret_key_file)
    return sync_calendars(db, config, vault, Resolver(config.dns), mailbox_id)


def meetings(db: Database) -> dict[str, Meeting]:
    with db.session() as session:
        found = session.scalars(select(Meeting)).all()
        session.expunge_all()
        return {m.uid: m for m in found}


def kinds(db: Database) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(Event.kind).where(Event.kind.like("meeting.%")).order_by(Event.id)
            )
        )


def test_first_sync_then_added_changed_and_deleted_events(
    db, cal_config, radicale, mailbox_id, account_id
) -> None:
    carol = contact(db, cal_config, account_id, "carol@client.com")
    work = radicale.calendar("bob", "work")
    in_a_week = "20261212T100000Z", "20261212T110000Z"
    work.save_event(event("kept@x", *in_a_week, "Kept"))
    work.save_event(event("moved@x", "20261214T100000Z", "20261214T110000Z", "To move"))
    work.save_event(event("gone@x", "20261215T100000Z", "20261215T110000Z", "To delete"))
    work.save_event(event("far@x", "20300101T100000Z", "20300101T110000Z", "Beyond the window"))

    report = sync(db, cal_config, mailbox_id)
    assert report.service == "caldav" and report.tally.changed == 3
    found = meetings(db)
    assert set(found) == {"kept@x", "moved@x", "gone@x"}
    assert found["kept@x"].source == "caldav" and found["kept@x"].summary == "Kept"
    with db.session() as session:
        row = session.scalars(select(Calendar)).one()
        assert row.sync_token and row.events == 3 and row.name == "Work"
        created = session.scalars(select(Event).where(Event.kind == "meeting.created")).all()
        assert all(e.payload["contact_ids"] == [carol] for e in created)

    # Nothing changed: nothing fetched, nothing written.
    assert sync(db, cal_config, mailbox_id).tally.changed == 0

    work.save_event(event("new@x", "20261216T100000Z", "20261216T110000Z", "Added"))
    moved = event("moved@x", "20261218T100000Z", "20261218T110000Z", "Moved", sequence=1)
    work.save_event(moved)
    work.event_by_uid("gone@x").delete()
    report = sync(db, cal_config, mailbox_id)
    assert (report.tally.changed, report.tally.removed) == (2, 1)
    found = meetings(db)
    assert found["new@x"].summary == "Added"
    assert found["moved@x"].summary == "Moved" and found["moved@x"].start_at == datetime(
        2026, 12, 18, 10, tzinfo=UTC
    )
    assert found["gone@x"].status == "cancelled"
    assert sorted(kinds(db)[-3:]) == ["meeting.cancelled", "meeting.created", "meeting.updated"]


def test_new_attendees_become_contacts_with_auto_create(
    db, cal_config, radicale, mailbox_id, account_id
) -> None:
    set_account(db, account_id, auto_create_contacts=True)
    radicale.calendar().save_event(
        event(
            "team@x",
            "20261212T100000Z",
            "20261212T110000Z",
            attendees=[("dan@partner.example", "TENTATIVE"), ("bob@acme.com", "ACCEPTED")],
            extra="ATTENDEE;CUTYPE=RESOURCE:mailto:room-1@acme-rooms.example\r\n",
        )
    )
    sync(db, cal_config, mailbox_id)
    from gateway.models import Contact

    with db.session() as session:
        made = {c.emails[0].address: c.source for c in session.scalars(select(Contact)).unique()}
    assert made == {"carol@client.com": "meeting", "dan@partner.example": "meeting"}


def test_a_server_without_sync_tokens_is_followed_by_ctag_and_etags(
    db, cal_config, radicale, mailbox_id
) -> None:
    work = radicale.calendar()
    work.save_event(event("a@x", "20261212T100000Z", "20261212T110000Z", "A"))
    work.save_event(event("b@x", "20261213T100000Z", "20261213T110000Z", "B"))
    access = Access(radicale.url, "bob", password="secret")
    assert sync_caldav(db, cal_config, mailbox_id, access, use_sync_token=False).changed == 2
    with db.session() as session:
        row = session.scalars(select(Calendar)).one()
        assert row.ctag and not row.sync_token
    assert sync_caldav(db, cal_config, mailbox_id, access, use_sync_token=False).changed == 0
    work.save_event(event("b@x", "20261213T100000Z", "20261213T110000Z", "B2", sequence=1))
    work.event_by_uid("a@x").delete()
    tally = sync_caldav(db, cal_config, mailbox_id, access, use_sync_token=False)
    assert (tally.changed, tally.removed) == (1, 1)
    assert meetings(db)["b@x"].summary == "B2" and meetings(db)["a@x"].status == "cancelled"


def test_a_changed_password_means_reconnect_required(db, cal_config, radicale, mailbox_id) -> None:
    radicale.calendar().save_event(event("a@x", "20261212T100000Z", "20261212T110000Z"))
    sync(db, cal_config, mailbox_id)
    radicale.set_password("bob", "changed")
    with pytest.raises(MailboxError) as failed:
        sync(db, cal_config, mailbox_id)
    assert failed.value.kind == "auth"
    with db.session() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        assert mailbox.state == "reconnect_required"
        assert mailbox.reconnect_reason == "password_changed"
        assert session.scalars(select(Calendar.last_error)).one()
        assert session.scalars(
            select(Event).where(Event.kind == "mailbox.reconnect_required")
        ).one()


def test_plain_http_to_a_server_not_allowed_is_refused(db, cal_config, mailbox_id) -> None:
    closed = replace(cal_config, security=SecurityConfig(allowed_private_networks=()))
    with pytest.raises(MailboxError) as failed:
        sync(db, closed, mailbox_id)
    assert failed.value.kind == "refused"


def test_caldav_with_an_oauth2_token_refreshed_when_refused(
    db, cal_config, radicale, mailbox_id
) -> None:
    """Google's way: a bearer token; a refused one is refreshed once, then the sync
    goes on; a revoked grant means reconnect_required."""
    import json

    from gateway.config import OAuth2Config
    from gateway.oauth2 import Tokens
    from inbound.calendar.role import _caldav_with_token
    from tests.peers.bearer_proxy import BearerProxy
    from tests.peers.token_endpoint import TokenEndpoint

    radicale.calendar().save_event(event("g@x", "20261212T100000Z", "20261212T110000Z", "G"))
    proxy = BearerProxy(radicale.url, "bob", "secret", tokens={"bob": "access-0"})
    endpoint = TokenEndpoint(proxy, refresh_tokens={"refresh-0": "bob"})
    config = replace(
        cal_config,
        oauth2=replace(
            OAuth2Config(), google_client_id="test-client", google_token_url=endpoint.url
        ),
    )
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        box = session.get_one(Mailbox, mailbox_id)
        box.provider, box.auth = "gmail", "oauth2"
        box.credentials = vault.encrypt(
            json.dumps({"access_token": "stale", "refresh_token": "refresh-0"})
        )
    try:
        tokens = Tokens("stale", "refresh-0")
        tally = _caldav_with_token(db, config, vault, mailbox_id, "gmail", proxy.url, tokens)
        assert tally.changed == 1 and meetings(db)["g@x"].summary == "G"
        assert proxy.refused >= 1 and len(endpoint.requests) == 1
        endpoint.refuse = "invalid_grant"
        proxy.tokens["bob"] = "revoked"
        with pytest.raises(MailboxError) as failed:
            _caldav_with_token(
                db, config, vault, mailbox_id, "gmail", proxy.url, Tokens("access-1", "refresh-1")
            )
        assert failed.value.kind == "auth"
    finally:
        endpoint.stop()
        proxy.stop()


def test_the_calendar_role_syncs_each_active_mailbox_once_an_interval(
    db, cal_config, radicale, mailbox_id
) -> None:
    """Two nodes run the role: the mailbox is synced by one of them, once per
    [calendar] interval; one that needs a person is not synced at all."""
    from gateway.models import Lease
    from inbound.calendar.role import CalendarRole

    radicale.calendar().save_event(event("r@x", "20261212T100000Z", "20261212T110000Z"))
    a = CalendarRole(db, cal_config, "node-a/background")
    b = CalendarRole(db, cal_config, "node-b/background")
    assert a.pass_once() == 1 and "r@x" in meetings(db)
    assert b.pass_once() == 0 and a.pass_once() == 0  # not due again before the interval
    with db.session() as session:
        lease = session.get_one(Lease, ("calendar", str(mailbox_id)))
        assert lease.holder is None and lease.generation == 1
        lease.due_at = lease.due_at.replace(year=2000)  # its turn again
    assert b.pass_once() == 1  # whichever node looks first
    with db.session() as session:
        session.get_one(Mailbox, mailbox_id).state = "reconnect_required"
        session.get_one(Lease, ("calendar", str(mailbox_id))).due_at = utcnow()
    assert a.pass_once() == 0  # a mailbox that needs a person


def test_a_node_that_lost_its_lease_writes_nothing(db, cal_config, radicale, mailbox_id) -> None:
    """Fencing: the sync of a node whose lease was taken over stops at its next write."""
    from gateway.leases import LeaseLost, claim_due, fence

    radicale.calendar().save_event(event("f@x", "20261212T100000Z", "20261212T110000Z"))
    held = claim_due(db, "calendar", "node-a", [str(mailbox_id)], 1, lease=60)
    with db.session() as session:  # node A froze; node B took the lease over
        from gateway.models import Lease

        lease = session.get_one(Lease, ("calendar", str(mailbox_id)))
        lease.holder, lease.generation = "node-b", lease.generation + 1

    def fenced(session):
        fence(session, "calendar", str(mailbox_id), "node-a", held[str(mailbox_id)])

    vault = Vault.load(cal_config.secret_key_file)
    with pytest.raises(LeaseLost):
        sync_calendars(db, cal_config, vault, Resolver(cal_config.dns), mailbox_id, fenced)
    assert meetings(db) == {}


def test_where_the_calendars_are(db, cal_config, zone_server, mailbox_id) -> None:
    from inbound.calendar.where import calendar_service

    resolver = Resolver(cal_config.dns)
    with db.session() as session:
        box = session.get_one(Mailbox, mailbox_id)
        srv = calendar_service(box, cal_config, resolver)
        assert (srv.kind, srv.how) == ("caldav", "srv") and srv.url.endswith("/")
        box.provider = "gmail"
        google = calendar_service(box, cal_config, resolver)
        assert google.url == "https://apidata.googleusercontent.com/caldav/v2/bob@acme.com/user"
        box.provider = "outlook"
        assert calendar_service(box, cal_config, resolver).kind == "graph"
        box.provider = "other"
        zone_server.clear()
        zone_server.set("acme.com", "A", "127.0.0.1")
        resolver = Resolver(cal_config.dns)  # a new one: the last answers are cached
        known = calendar_service(box, cal_config, resolver)
        assert known.url == "https://acme.com/.well-known/caldav" and known.how == "well-known"
        zone_server.set("acme.com", "A", "10.1.2.3")
        with pytest.raises(MailboxError) as failed:  # a private address, not allowed
            calendar_service(box, cal_config, Resolver(cal_config.dns))
        assert failed.value.kind == "refused"
        session.rollback()


def test_calendars_closed_to_a_signed_in_user_leave_the_mailbox_syncing(
    db, cal_config, tmp_path, mailbox_id, zone_server
) -> None:
    """403 (signed in, calendars not open: a Google grant without the calendar scope)
    is the calendar's problem: the mailbox stays active, the calendar says why."""
    closed = Radicale(tmp_path / "closed")
    closed.set_password("bob", "secret")
    closed.forbid_all = True
    closed.start()
    try:
        zone_server.set("_caldav._tcp.acme.com", "SRV", (0, 0, closed.port, "localhost"))
        with pytest.raises(MailboxError) as failed:
            sync(db, cal_config, mailbox_id)
        assert failed.value.kind == "protocol" and "forbids" in str(failed.value)
        with db.session() as session:
            assert session.get_one(Mailbox, mailbox_id).state == "active"
    finally:
        closed.stop()
