"""The dropbox SMTP server driven by smtplib: what a sending MTA and a user see."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from gateway import smtp_replies as replies
from gateway.models import RawMessage, Sighting
from gateway.pipeline import Pipeline
from tests.helpers.dropbox import Dropbox, expect, from_bob, refused, send
from tests.helpers.pipeline import count
from tests.peers.dkim import DkimKey

# --- EHLO and the happy path -----------------------------------------------------------


def test_ehlo_advertises_the_extensions(dropbox) -> None:
    with dropbox.client() as client:
        code, text = client.ehlo("client.test")
    assert code == 250
    lines = text.decode().splitlines()
    for keyword in (
        "SIZE 200000",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
    ):
        assert keyword in lines


def test_verified_mail_is_stored_then_attached(dropbox, db, config) -> None:
    from tests.helpers.pipeline import attached, contact

    carol = contact(db, config, 1, "carol@client.com")
    assert send(dropbox, from_bob(), "bob@acme.com", dropbox.address("bob@acme.com")) == {}
    with db.session() as session:
        sighting = session.scalars(select(Sighting)).one()
        assert sighting.source == "dropbox" and sighting.state == "pending"
        assert "spf=pass smtp.mailfrom=acme.com" in (sighting.auth_results or "")
        assert "dmarc=pass" in (sighting.auth_results or "")
    [outcome] = Pipeline(db, config).run_pending()
    assert attached(db, outcome.message_id or 0) == {carol: {"to"}}


def test_raw_bytes_are_stored_untouched(dropbox, db) -> None:
    raw = from_bob(body="caf\u00e9 \u2014 8-bit body\r\n" + ("x" * 900 + "\r\n") * 6)
    send(dropbox, raw, "bob@acme.com", dropbox.address("bob@acme.com"))
    with db.session() as session:
        assert session.scalars(select(RawMessage.data)).one() == raw


def test_one_message_for_several_users_is_stored_once(dropbox, db) -> None:
    rcpts = [dropbox.address("bob@acme.com"), dropbox.address("ann@acme.com")]
    send(dropbox, from_bob(), "bob@acme.com", *rcpts, rcpt_options=())
    assert count(db, RawMessage) == 1
    with db.session() as session:
        users = session.scalars(select(Sighting.user_id)).all()
    assert len(users) == 2 and len(set(users)) == 2


def test_dkim_aligned_signature_verifies_without_spf(dropbox, db, dkim_key: DkimKey) -> None:
    raw = dkim_key.sign(from_bob(from_="dave@dkim.test"), "dkim.test")
    assert send(dropbox, raw, "dave@dkim.test", dropbox.address("dave@dkim.test")) == {}
    with db.session() as session:
        results = session.scalars(select(Sighting.auth_results)).one() or ""
    assert "dkim=pass header.d=dkim.test" in results and "spf=fail" in results


# --- recipients: never a relay -----------------------------------------------------------


def rcpt(dropbox: Dropbox, address: str) -> tuple[int, bytes]:
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        return client.rcpt(address)


def test_unknown_and_rotated_dropbox_addresses(dropbox, db, config) -> None:
    from gateway.accounts import dropbox_address, rotate_dropbox

    domain = config.dropbox.domain
    expect(rcpt(dropbox, f"aaaaaaaaaaaaaaaaaaaaaaaa@{domain}"), replies.UNKNOWN_RECIPIENT)
    expect(rcpt(dropbox, f"not-a-token@{domain}"), replies.UNKNOWN_RECIPIENT)
    old = dropbox.address("bob@acme.com")
    with db.session() as session:
        new = dropbox_address(config, rotate_dropbox(session, config, "bob@acme.com"))
    expect(rcpt(dropbox, old), replies.UNKNOWN_RECIPIENT)
    expect(rcpt(dropbox, new), replies.RECIPIENT_OK)
    expect(rcpt(dropbox, new.upper()), replies.RECIPIENT_OK)


RELAY_PROBES = [
    "victim@example.org",
    "<victim@example.org>",
    "victim%example.org@{domain}",
    "example.org!victim@{domain}",
    '"victim@example.org"@{domain}',
    "<@{domain}:victim@example.org>",
    "<@example.org,@{domain}:{token}@{domain}>",
    "{token}@{domain}.evil.org",
    "{token}@example.org",
    "postmaster",
]


@pytest.mark.parametrize("probe", RELAY_PROBES)
def test_relay_probes_are_refused(dropbox, db, config, probe: str) -> None:
    token = dropbox.address("bob@acme.com").split("@")[0]
    address = probe.format(domain=config.dropbox.domain, token=token)
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        client.putcmd("rcpt", f"TO:{address if address.startswith('<') else '<' + address + '>'}")
        code, text = client.getreply()
        assert (code, text.decode()) == (
            550,
            "5.7.1 "
            + (
                replies.SOURCE_ROUTE.text if address.startswith("<@") else replies.RELAY_DENIED.text
            ),
        )
        with pytest.raises(smtplib.SMTPResponseException):
            client.data(from_bob())
    assert count(db, Sighting) == 0


def test_too_many_recipients(dropbox) -> None:
    address = dropbox.address("bob@acme.com")
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        for _ in range(100):
            expect(client.rcpt(address), replies.RECIPIENT_OK)
        expect(client.rcpt(address), replies.TOO_MANY_RECIPIENTS)


# --- sender verification ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_from", "mail_from", "reason"),
    [
        # A stranger: SPF passes for other.test, but no user sent it.
        ("x@other.test", "x@other.test", "Sender is not a user of this dropbox's account"),
        # Spoofed From of a user, sent from a domain whose SPF passes but is not aligned.
        ("bob@acme.com", "x@other.test", "Sender not verified"),
        # The user's domain does not allow this IP and nothing is signed.
        ("dave@dkim.test", "dave@dkim.test", "spf=fail(dkim.test)"),
        ("bob@soft.test", "bob@soft.test", "Sender is not a user"),
    ],
)
def test_unverified_senders_are_refused(dropbox, db, raw_from, mail_from, reason) -> None:
    code, text = refused(
        dropbox, from_bob(from_=raw_from), mail_from, dropbox.address("bob@acme.com")
    )
    assert code == 550 and text.startswith("5.7.1 ") and reason in text
    assert count(db, Sighting) == 0 and count(db, RawMessage) == 0


@pytest.mark.parametrize(
    ("domain", "spf"),
    [("soft.test", "softfail"), ("none.test", "none"), ("broken.test", "temperror")],
)
def test_spf_results_are_named_in_the_refusal(dropbox, db, config, domain, spf) -> None:
    from gateway.accounts import add_user
    from gateway.models import Account

    with db.session() as session:
        add_user(session, config, session.get_one(Account, 1), f"user@{domain}")
    code, text = refused(
        dropbox, from_bob(from_=f"user@{domain}"), f"user@{domain}", dropbox.address("bob@acme.com")
    )
    assert code == 550 and f"spf={spf}({domain})" in text


def test_dkim_not_aligned_or_with_length_limit_does_not_verify(dropbox, db, dkim_key) -> None:
    other = dkim_key.sign(from_bob(from_="dave@dkim.test"), "other.test")
    code, text = refused(dropbox, other, "dave@dkim.test", dropbox.address("dave@dkim.test"))
    assert code == 550 and "dkim=pass(other.test)" in text
    limited = dkim_key.sign(from_bob(from_="dave@dkim.test"), "dkim.test", length=True)
    code, text = refused(dropbox, limited, "dave@dkim.test", dropbox.address("dave@dkim.test"))
    assert code == 550 and "dkim=neutral(dkim.test)" in text
    tampered = dkim_key.sign(from_bob(from_="dave@dkim.test"), "dkim.test").replace(
        b"Hello", b"Howdy"
    )
    code, text = refused(dropbox, tampered, "dave@dkim.test", dropbox.address("dave@dkim.test"))
    assert code == 550 and "dkim=fail(dkim.test)" in text


@pytest.mark.parametrize("dropbox_options", [{"policy": "quarantine"}])
def test_quarantine_holds_then_approves(dropbox, db, config, dropbox_options) -> None:
    from gateway import quarantine

    with dropbox.client() as client:
        client.sendmail(
            "x@other.test", [dropbox.address("bob@acme.com")], from_bob(from_="x@other.test")
        )
    with db.session() as session:
        [(sighting, user)] = quarantine.held(session, 1)
        assert user == "bob@acme.com" and "spf=pass" in (sighting.auth_results or "")
    assert Pipeline(db, config).run_pending() == []
    with db.session() as session:
        quarantine.approve(session, 1, sighting.id)
    [outcome] = Pipeline(db, config).run_pending()
    assert outcome.created


@pytest.mark.parametrize(
    "dropbox_options", [{"policy": "trust-network", "trusted_networks": ("127.0.0.0/8",)}]
)
def test_trusted_network_skips_checks(dropbox, db, dropbox_options) -> None:
    send(
        dropbox,
        from_bob(from_="anyone@nowhere.test"),
        "anyone@nowhere.test",
        dropbox.address("bob@acme.com"),
    )
    with db.session() as session:
        assert session.scalars(select(Sighting.auth_results)).one() is None


# --- input hygiene ------------------------------------------------------------------
