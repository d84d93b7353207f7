"""Microsoft 365 calendar sync through Graph's calendarView delta, against a local
server that follows the documented protocol: pages and nextLink, the deltaLink and
what changed since, removed events, 429 with Retry-After, a 401 answered by one
token refresh (for Graph's scope), then reconnect_required when the grant is gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from gateway.config import CalendarConfig, Config, OAuth2Config
from gateway.db import Database
from gateway.imap.connection import MailboxError
from gateway.models import Calendar, Event, Mailbox, Meeting
from gateway.oauth2 import Tokens
from gateway.resolver import Resolver
from gateway.vault import Vault, ensure_key_file
from inbound.calendar.graph_sync import sync_graph
from inbound.calendar.role import sync_calendars
from tests.helpers.mailboxes import mailbox_row
from tests.helpers.pipeline import contact
from tests.peers.graph_server import GraphServer, graph_event
from tests.peers.token_endpoint import TokenEndpoint

USER = "bob@acme.com"


@pytest.fixture
def graph() -> Iterator[tuple[GraphServer, TokenEndpoint]]:
    server = GraphServer(user=USER)
    endpoint = TokenEndpoint(server, refresh_tokens={"refresh-0": USER})
    yield server, endpoint
    endpoint.stop()
    server.stop()


@pytest.fixture
def graph_config(config: Config, graph: tuple[GraphServer, TokenEndpoint]) -> Config:
    server, endpoint = graph
    ensure_key_file(config.secret_key_file)
    return replace(
        config,
        oauth2=replace(
            OAuth2Config(),
            microsoft_client_id="test-client",
            microsoft_token_url=endpoint.url + "?tenant={tenant}",
            timeout=5.0,
        ),
        calendar=replace(CalendarConfig(), graph_url=server.base, graph_page_size=2),
    )


@pytest.fixture
def mailbox_id(db: Database, graph_config: Config, account_id: int) -> int:
    tokens = {"access_token": "imap-token", "refresh_token": "refresh-0"}
    return mailbox_row(
        db,
        graph_config,
        USER,
        json.dumps(tokens),
        provider="microsoft365",
        imap_host="outlook.office365.com",
        imap_port=993,
        imap_security="tls",
        auth="oauth2",
    )


def sync(db: Database, config: Config, mailbox_id: int):
    vault = Vault.load(config.secret_key_file)
    return sync_calendars(db, config, vault, Resolver(config.dns), mailbox_id)


def meetings(db: Database) -> dict[str, Meeting]:
    with db.session() as session:
        found = session.scalars(select(Meeting)).all()
        for meeting in found:
            _ = meeting.attendees
        session.expunge_all()
        return {m.uid: m for m in found}


def fill(server: GraphServer, count: int) -> None:
    for i in range(count):
        server.put(
            f"e{i}",
            **graph_event(
                f"Meeting {i}",
                f"2026-12-{10 + i:02d}T09:00:00",
                f"2026-12-{10 + i:02d}T10:00:00",
                attendees=(
                    ("dan@partner.example", "accepted", "required"),
                    ("room-4@contoso.example", "accepted", "resource"),  # a room mailbox
                ),
            ),
        )


def test_first_sync_in_pages_then_changes_by_the_delta_link(
    db, graph_config, graph, mailbox_id, account_id
) -> None:
    server, endpoint = graph
    dan = contact(db, graph_config, account_id, "dan@partner.example")
    fill(server, 5)
    report = sync(db, graph_config, mailbox_id)
    assert report.service == "graph" and report.tally.changed == 5
    assert sum("$skiptoken" in r for r in server.requests) == 2  # pages of 2: 2, 2, 1
    assert endpoint.requests[0]["scope"] == graph_config.calendar.graph_scope
    found = meetings(db)
    first = found["uid-e0"]
    assert first.source == "graph" and first.summary == "Meeting 0"
    assert first.timezone == "Europe/Berlin" and first.conference_url.startswith("https://teams")
    people = {a.address: a for a in first.attendees}
    assert people["dan@partner.example"].status == "ACCEPTED"
    assert people["room-4@contoso.example"].resource  # never a contact
    assert people["carol@client.com"].organizer
    with db.session() as session:
        row = session.scalars(select(Calendar)).one()
        assert "$deltatoken=" in row.sync_token and row.events == 5
        created = session.scalars(select(Event).where(Event.kind == "meeting.created")).all()
        assert len(created) == 5 and all(e.payload["contact_ids"] == [dan] for e in created)
        # The stored IMAP token stays; the rotated refresh token is kept.
        stored = Tokens.from_json(
            Vault.load(graph_config.secret_key_file).decrypt(
                session.get_one(Mailbox, mailbox_id).credentials or ""
            )
        )
        assert stored.access_token == "imap-token" and stored.refresh_token == "refresh-1"

    server.requests.clear()
    server.put("e1", **graph_event("Moved", "2026-12-20T09:00:00", "2026-12-20T10:00:00"))
    server.delete("e2")
    server.put("e9", **graph_event("New", "2026-12-21T09:00:00", "2026-12-21T10:00:00"))
    report = sync(db, graph_config, mailbox_id)
    assert "$deltatoken=" in server.requests[0]  # from the deltaLink: no first sync again
    assert not any("startDateTime" in r for r in server.requests)
    assert (report.tally.changed, report.tally.removed) == (2, 1)
    found = meetings(db)
    assert found["uid-e1"].summary == "Moved" and found["uid-e9"].summary == "New"
    assert found["uid-e2"].status == "cancelled"


def test_429_is_waited_out_by_its_retry_after(db, graph_config, graph, mailbox_id) -> None:
    server, _ = graph
    fill(server, 3)
    server.throttle = 2
    slept: list[float] = []
    vault = Vault.load(graph_config.secret_key_file)
    with db.read() as session:
        tokens = Tokens.from_json(
            vault.decrypt(session.get_one(Mailbox, mailbox_id).credentials or "")
        )
    from gateway.imap.session import refreshed

    tally = sync_graph(
        db,
        graph_config,
        mailbox_id,
        server.base,
        tokens,
        lambda t: refreshed(
            db,
            graph_config,
            vault,
            mailbox_id,
            "microsoft365",
            t,
            graph_config.calendar.graph_scope,
        ),
        sleep=slept.append,
    )
    assert slept == [2.0, 2.0] and tally.changed == 3


def test_a_refused_token_is_refreshed_once_then_reconnect_required(
    db, graph_config, graph, mailbox_id
) -> None:
    server, endpoint = graph
    fill(server, 1)
    sync(db, graph_config, mailbox_id)
    server.tokens[USER] = "revoked"  # Graph stops taking the token it gave
    before = len(endpoint.requests)
    sync(db, graph_config, mailbox_id)  # refreshed at the start, so it works
    assert len(endpoint.requests) == before + 1

    # A 401 mid-sync: one more refresh, then it goes on.
    original = server.answer
    calls = {"n": 0}

    def once_refused(path, headers):
        calls["n"] += 1
        if calls["n"] == 1:
            return 401, {}, {"error": {"code": "InvalidAuthenticationToken"}}
        return original(path, headers)

    server.answer = once_refused
    sync(db, graph_config, mailbox_id)
    assert len(endpoint.requests) == before + 3
    server.answer = original

    endpoint.refuse = "invalid_grant"  # the grant is gone: a person must sign in again
    with pytest.raises(MailboxError) as failed:
        sync(db, graph_config, mailbox_id)
    assert failed.value.kind == "auth"
    with db.session() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        assert mailbox.state == "reconnect_required" and mailbox.reconnect_reason == "oauth_revoked"


def test_an_expired_delta_token_syncs_from_the_start(db, graph_config, graph, mailbox_id) -> None:
    server, _ = graph
    fill(server, 2)
    sync(db, graph_config, mailbox_id)
    with db.session() as session:
        session.scalars(
            select(Calendar)
        ).one().sync_token = f"{server.base}/me/calendarView/delta?$deltatoken=999"
    server.delete("e0")
    report = sync(db, graph_config, mailbox_id)
    assert report.tally.removed == 1 and meetings(db)["uid-e0"].status == "cancelled"


def test_links_off_graphs_origin_are_refused(db, graph_config, graph, mailbox_id) -> None:
    with db.session() as session:
        session.add(
            Calendar(
                mailbox_id=mailbox_id,
                kind="graph",
                url=f"{graph[0].base}/me/calendarView/delta",
                sync_token="https://collector.example/steal?$deltatoken=1",
            )
        )
    with pytest.raises(MailboxError) as failed:
        sync(db, graph_config, mailbox_id)
    assert "off its origin" in str(failed.value)


@pytest.mark.parametrize("how", ["consent_required", "403"])
def test_a_calendar_not_granted_leaves_the_mailbox_syncing(
    db, graph_config, graph, mailbox_id, how
) -> None:
    """A mailbox connected before the consent asked for Calendars.Read: the calendar
    says why it is not synced; the mail sync goes on (no reconnect_required)."""
    server, endpoint = graph
    fill(server, 1)
    if how == "consent_required":
        endpoint.refuse = "consent_required"
    else:
        original = server.answer
        server.answer = lambda path, headers: (
            (403, {}, {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}})
            if headers.get("Authorization", "").removeprefix("Bearer ") in server.tokens.values()
            else original(path, headers)
        )
    with pytest.raises(MailboxError) as failed:
        sync(db, graph_config, mailbox_id)
    assert failed.value.kind == "protocol" and "allow" in str(failed.value)
    with db.session() as session:
        assert session.get_one(Mailbox, mailbox_id).state == "active"
        assert "allow" in (session.scalars(select(Calendar.last_error)).one() or "")
