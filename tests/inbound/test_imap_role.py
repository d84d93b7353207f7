"""The `imap` role against a real Dovecot: IDLE wake-up, polling where IDLE is not used,
refused credentials stopping one mailbox while another goes on, a clean stop."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from gateway.accounts import add_user, get_account
from gateway.db import Database
from gateway.models import Mailbox, MailboxFolder
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.helpers.imap import (
    attached_subjects,
    connect_mailbox,
    contacts,
    initial_sync_done,
    serving,
)
from tests.helpers.mail import make_message
from tests.helpers.wait import eventually
from tests.peers.dovecot import ImapUser


def test_new_mail_is_picked_up_by_idle(db, imap_config, account_id, imap_user) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="before"))
    connect_mailbox(db, imap_config, imap_user)
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=600.0))
    with serving(db, config):
        eventually(lambda: attached_subjects(db) == ["before"])
        eventually(lambda: initial_sync_done(db))
        imap_user.append("INBOX", make_message(from_="carol@client.com", subject="after"))
        # Polling is 10 minutes away: only IDLE can bring it this soon.
        eventually(lambda: attached_subjects(db) == ["after", "before"])
    assert sorted(imap_user.body_fetches()) == [1, 2]


def test_without_idle_new_mail_is_polled(db, imap_config, account_id, imap_user) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    # Yahoo's preset says: no IDLE (its servers refuse it); poll instead.
    connect_mailbox(db, imap_config, imap_user, provider="yahoo")
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=0.3))
    with serving(db, config):
        eventually(lambda: initial_sync_done(db))
        imap_user.append("Sent", make_message(from_="bob@acme.com", to="carol@client.com"))
        eventually(lambda: len(attached_subjects(db)) == 1)
    assert "IDLE" not in imap_user.server.rawlog(imap_user.name).upper()


def test_a_refused_password_stops_that_mailbox_and_the_others_go_on(
    db, imap_config, account_id, imap_user, dovecot_server
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    connect_mailbox(db, imap_config, imap_user)
    other = ImapUser(dovecot_server, imap_user.name + "b", "pw-b")
    dovecot_server.add_user(other.name, other.password)
    with db.session() as session:
        add_user(session, imap_config, get_account(session), "eve@acme.com", "Eve")
    request = MailboxRequest(
        email="eve@acme.com",
        imap_host="127.0.0.1",
        imap_port=dovecot_server.port,
        imap_security="none",
        username=other.name,
    )
    add_mailbox(db, imap_config, Vault.load(imap_config.secret_key_file), request, other.password)
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=0.3))
    with serving(db, config):
        eventually(lambda: initial_sync_done_for(db, 2))
        dovecot_server.set_password(imap_user.name, "changed")
        dovecot_server.kick(imap_user.name)  # its session ends; signing in again fails
        eventually(lambda: state_of(db, "bob@acme.com") == "reconnect_required")
        other.append("INBOX", make_message(from_="carol@client.com", subject="for eve"))
        eventually(lambda: attached_subjects(db) == ["for eve"])
    assert state_of(db, "eve@acme.com") == "active"


def initial_sync_done_for(db: Database, mailboxes: int) -> bool:
    with db.session() as session:
        folders = session.scalars(select(MailboxFolder)).all()
        return len(folders) == 2 * mailboxes and all(f.initial_done for f in folders)


def state_of(db: Database, email: str) -> str:
    with db.session() as session:
        return session.scalars(select(Mailbox.state).where(Mailbox.email == email)).one()


def test_a_new_contact_gets_their_older_mail_from_a_running_sync(
    db, imap_config, account_id, imap_user
) -> None:
    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="old"))
    connect_mailbox(db, imap_config, imap_user)
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=600.0))
    with serving(db, config):
        eventually(lambda: initial_sync_done(db))
        assert attached_subjects(db) == []
        contacts(db, imap_config, account_id, "carol@client.com")
        # Neither IDLE (no new mail) nor polling (10 minutes): the role's nudge.
        eventually(lambda: attached_subjects(db) == ["old"])


def test_two_nodes_share_the_mailboxes_one_node_each_and_take_over(
    db, imap_config, account_id, dovecot_server
) -> None:
    """Two nodes run the imap role on one database: each mailbox is synced by one node
    at a time (the leases, counted per holder), the load spreads, a node that joins
    takes its share, and when one stops the other takes its mailboxes over."""
    from gateway.config import ClusterConfig
    from gateway.models import Lease
    from inbound.imap.service import ImapRole
    from tests.helpers.roles import running

    config = replace(
        imap_config,
        cluster=ClusterConfig(lease=3.0),
        imap=replace(imap_config.imap, poll_interval=0.5),
    )
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        for i in range(6):
            add_user(session, config, get_account(session), f"u{i}@acme.com", f"U{i}")
    for i in range(6):
        user = ImapUser(dovecot_server, f"share{i}-{account_id}", "pw")
        dovecot_server.add_user(user.name, user.password)
        request = MailboxRequest(
            email=f"u{i}@acme.com",
            imap_host="127.0.0.1",
            imap_port=dovecot_server.port,
            imap_security="none",
            username=user.name,
        )
        add_mailbox(db, config, vault, request, user.password)

    def holders() -> dict[str, int]:
        with db.read() as session:
            rows = session.scalars(
                select(Lease.holder).where(Lease.kind == "imap", Lease.holder.is_not(None))
            ).all()
        counted: dict[str, int] = {}
        for holder in rows:
            counted[holder] = counted.get(holder, 0) + 1
        return counted

    node_a = ImapRole(db, config, lambda: None, owner="node-a/background")
    node_b = ImapRole(db, config, lambda: None, owner="node-b/background")
    with running({"imap": node_a}):
        eventually(lambda: holders() == {"node-a/background": 6})
        with running({"imap": node_b}):
            # B joins: A hands mailboxes back one a pass until each holds three.
            eventually(lambda: holders() == {"node-a/background": 3, "node-b/background": 3}, 60)
            assert not set(node_a.held) & set(node_b.held)  # never one mailbox twice
            assert set(node_a.runners).isdisjoint(node_b.runners)
        # B stopped (and gave its leases back): A takes them all over.
        eventually(lambda: holders() == {"node-a/background": 6}, 30)
    assert holders() == {}  # A gave them back when it stopped


def test_a_node_that_lost_a_mailboxs_lease_writes_nothing(
    db, imap_config, account_id, imap_user
) -> None:
    """Fencing: a sync pass under a lease another node has taken over stops at its
    first write; no checkpoint, no message of it is stored."""
    import pytest

    from gateway.imap.connection import close
    from gateway.imap.session import open_session
    from gateway.leases import LeaseLost, claim_due, fencing
    from gateway.models import Lease, Sighting
    from inbound.imap.sync import MailboxSync

    contacts(db, imap_config, account_id, "carol@client.com")
    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="hi"))
    box = connect_mailbox(db, imap_config, imap_user)
    [(key, generation)] = claim_due(db, "imap", "node-a", [str(box.id)], 1, 60).items()
    with db.session() as session:  # node A froze; node B took the mailbox over
        lease = session.get_one(Lease, ("imap", key))
        lease.holder, lease.generation = "node-b", generation + 1
    client = open_session(db, imap_config, Vault.load(imap_config.secret_key_file), box.id)
    try:
        sync = MailboxSync(
            db, imap_config, box.id, fence=fencing("imap", key, "node-a", generation)
        )
        with pytest.raises(LeaseLost):
            sync.run(client)
    finally:
        close(client)
    with db.read() as session:
        assert session.scalars(select(MailboxFolder)).all() == []
        assert session.scalars(select(Sighting)).all() == []


def test_a_node_takes_only_the_sync_requests_of_the_mailboxes_it_syncs(
    db, imap_config, account_id, imap_user
) -> None:
    """A "sync now" of a mailbox another node syncs is left for that node."""
    from gateway.models import utcnow
    from inbound.imap.mailboxes import take_sync_requests

    box = connect_mailbox(db, imap_config, imap_user)
    with db.session() as session:
        session.get_one(Mailbox, box.id).sync_requested_at = utcnow()
    assert take_sync_requests(db, {box.id + 1}) == set()  # not this node's
    assert take_sync_requests(db, set()) == set()
    assert take_sync_requests(db, {box.id}) == {box.id}
    assert take_sync_requests(db, {box.id}) == set()  # taken once


def test_the_audit_is_due_once_an_interval_whichever_node_syncs_the_mailbox(
    db, imap_config, account_id, imap_user
) -> None:
    """The completeness audit's schedule lives in the database: the first one an
    interval after the mailbox is first synced, then once an interval, and a mailbox
    that moves to another node (or a node that restarts) keeps it."""
    from datetime import timedelta

    from gateway.config import ImapConfig
    from gateway.models import Lease, utcnow
    from inbound.imap.service import MailboxRunner

    config = replace(imap_config, imap=replace(ImapConfig(), audit_interval=3600.0))
    box = connect_mailbox(db, config, imap_user)
    vault = Vault.load(config.secret_key_file)
    audits: list[str] = []

    class Sync:
        def __init__(self, node: str) -> None:
            self.node = node

        def audit(self, client: object) -> None:
            audits.append(self.node)

    def audit_on(node: str) -> None:
        runner = MailboxRunner(db, config, vault, box.id, lambda: None, owner=node)
        runner._audit_if_due(Sync(node), None)  # type: ignore[arg-type]

    def an_hour_passes() -> None:
        with db.session() as session:
            lease = session.get_one(Lease, ("audit", str(box.id)))
            lease.due_at = utcnow() - timedelta(seconds=1)

    audit_on("node-a")
    assert audits == []  # an interval after the first sync
    an_hour_passes()
    audit_on("node-a")
    audit_on("node-a")
    audit_on("node-b")  # the mailbox moved: not due again yet
    assert audits == ["node-a"]
    an_hour_passes()
    audit_on("node-b")
    assert audits == ["node-a", "node-b"]


def test_a_runner_whose_lease_was_not_renewed_in_time_ends_its_session(
    db, imap_config, account_id, imap_user
) -> None:
    """The database away: the role cannot renew the lease, so another node may take
    the mailbox once it runs out. The runner ends its IMAP session before then (by
    its own clock), so Dovecot never sees two nodes' sessions of one mailbox."""
    import threading
    import time

    from gateway.leases import claim_due, fencing
    from inbound.imap.service import MailboxRunner
    from tests.helpers.nodes import open_sessions

    contacts(db, imap_config, account_id, "carol@client.com")
    box = connect_mailbox(db, imap_config, imap_user)
    [(key, generation)] = claim_due(db, "imap", "node-a", [str(box.id)], 1, 60).items()
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=600.0))
    deadline = time.monotonic() + 4.0  # renewed until then, then never again
    runner = MailboxRunner(
        db,
        config,
        Vault.load(config.secret_key_file),
        box.id,
        lambda: None,
        fencing("imap", key, "node-a", generation),
        "node-a",
        lambda: deadline,
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        eventually(lambda: runner.idling)  # synced, waiting for mail in IDLE
        log = imap_user.server.root / "dovecot.log"
        assert imap_user.name in open_sessions(log.read_text())
        thread.join(timeout=10)
        assert not thread.is_alive()  # it ended by itself, about when the lease lapsed
        assert time.monotonic() >= deadline
        eventually(lambda: imap_user.name not in open_sessions(log.read_text()))
    finally:
        runner.stop()
        thread.join(timeout=10)


def test_a_session_is_logged_out_whatever_fails_after_the_login(
    db, imap_config, account_id, imap_user
) -> None:
    """The lease lost (or the database gone) right after the login: the runner stops
    and its session is logged out, not left open beside the next node's."""
    from gateway.leases import LeaseLost
    from inbound.imap.service import MailboxRunner
    from tests.helpers.nodes import open_sessions

    box = connect_mailbox(db, imap_config, imap_user)
    writes: list[str] = []

    def fence(session: object) -> None:
        writes.append("write")
        if len(writes) > 1:  # the first write (before the login) passes
            raise LeaseLost("another node holds it now")

    runner = MailboxRunner(
        db, imap_config, Vault.load(imap_config.secret_key_file), box.id, lambda: None, fence
    )
    runner.run()  # returns: the lease is lost
    log = imap_user.server.root / "dovecot.log"
    assert "Login: user=<" + imap_user.name in log.read_text()  # it did sign in
    eventually(lambda: imap_user.name not in open_sessions(log.read_text()))
