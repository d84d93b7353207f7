"""Connecting a mailbox against a real Dovecot: saved only after a real sign-in, errors
that say what to do (app passwords, private hosts, unreachable servers), and one-way
sync only on the plans that have it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from gateway.config import SecurityConfig
from gateway.imap.connection import MailboxError
from gateway.models import (
    Account,
    Event,
    Mailbox,
    Plan,
)
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.helpers.imap import connect_mailbox, contacts, sync
from tests.helpers.mail import make_message
from tests.helpers.pipeline import count


def test_a_mailbox_is_saved_only_after_signing_in(db, imap_config, account_id, imap_user) -> None:
    with pytest.raises(MailboxError) as refused:
        connect_mailbox(db, imap_config, imap_user, password="wrong")
    assert refused.value.kind == "auth"
    assert "refused the user name or password" in str(refused.value)
    assert count(db, Mailbox) == 0

    mailbox = connect_mailbox(db, imap_config, imap_user)
    assert mailbox.state == "active"
    with db.session() as session:
        stored = session.get_one(Mailbox, mailbox.id)
        assert stored.credentials and imap_user.password not in stored.credentials
        assert Vault.load(imap_config.secret_key_file).decrypt(stored.credentials) == "secret-1"
        kinds = list(session.scalars(select(Event.kind)))
    assert "mailbox.connected" in kinds


def test_a_provider_with_two_factor_sign_in_says_to_make_an_app_password(
    db, imap_config, account_id, imap_user
) -> None:
    with pytest.raises(MailboxError) as refused:
        connect_mailbox(db, imap_config, imap_user, password="wrong", provider="gmail")
    assert "app password" in str(refused.value)
    assert "https://support.google.com/accounts/answer/185833" in str(refused.value)


def test_hosts_on_private_networks_are_refused_unless_allowed(
    db, imap_config, account_id, imap_user
) -> None:
    closed = replace(imap_config, security=SecurityConfig())
    with pytest.raises(MailboxError) as refused:
        connect_mailbox(db, closed, imap_user)
    assert refused.value.kind == "refused"
    assert "127.0.0.1, a loopback address" in str(refused.value)
    for host in ("10.1.2.3", "169.254.169.254", "192.168.0.1", "::1", "0.0.0.0"):
        request = MailboxRequest(
            email="bob@acme.com", imap_host=host, imap_port=993, imap_security="tls"
        )
        with pytest.raises(MailboxError, match="the gateway connects only to public servers"):
            add_mailbox(db, closed, Vault.load(closed.secret_key_file), request, "x")
    assert count(db, Mailbox) == 0


def test_unreachable_and_wrong_protocol_are_told_apart(db, imap_config, account_id) -> None:
    import socket

    with socket.socket() as idle:
        idle.bind(("127.0.0.1", 0))
        port = idle.getsockname()[1]  # bound, not listening: connection refused
        request = MailboxRequest(
            email="bob@acme.com", imap_host="127.0.0.1", imap_port=port, imap_security="none"
        )
        with pytest.raises(MailboxError) as failed:
            add_mailbox(db, imap_config, Vault.load(imap_config.secret_key_file), request, "x")
    assert failed.value.kind == "unreachable"


def test_one_way_sync_needs_a_pro_or_enterprise_plan(
    db, imap_config, account_id, imap_user
) -> None:
    from gateway.errors import InputError

    with pytest.raises(InputError, match="one-way sync needs the pro or enterprise plan"):
        connect_mailbox(db, imap_config, imap_user, sync_mode="one_way")
    with db.session() as session:
        session.get_one(Account, account_id).plan = Plan.PRO.value
    mailbox = connect_mailbox(db, imap_config, imap_user, sync_mode="one_way")
    imap_user.append("INBOX", make_message(from_="carol@client.com"))
    contacts(db, imap_config, account_id, "carol@client.com")
    assert sync(db, imap_config).fetched == 0  # one-way pulls nothing
    assert mailbox.sync_mode == "one_way"
