"""DKIM keys and signatures: `gateway dkim ...`, keys encrypted at rest, and signatures
that unmodified dkimpy verifies through the test DNS server (RSA and ed25519 together),
with the signing policy the issue asks for."""

from __future__ import annotations

import re

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.accounts import create_account, get_account
from gateway.config import Config, DnsConfig
from gateway.db import Database
from gateway.errors import Conflict
from gateway.models import DkimKey
from gateway.resolver import Resolver
from gateway.vault import Vault, ensure_key_file
from outbound.dkim_keys import (
    SigningKey,
    generate,
    list_keys,
    new_key_pair,
    record,
    rotate,
    signing_keys,
)
from outbound.dkim_sign import Signer, SigningError, relaxed_body
from tests.peers.dns import ZoneServer

MESSAGE = (
    b"From: Bob <bob@acme.com>\r\nTo: Carol <carol@client.com>\r\nCc: ann@acme.com\r\n"
    b"Subject: Our offer\r\nDate: Tue, 1 Dec 2026 09:05:00 +0100\r\n"
    b"Message-ID: <offer-1@acme.com>\r\nIn-Reply-To: <q-1@client.com>\r\n"
    b"References: <q-1@client.com>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nX-Mailer: CRM\r\n\r\nHello Carol,\r\n"
)

_PAIR = new_key_pair("rsa")
_KEY = SigningKey("acme.com", "s1", "rsa", _PAIR.private_pem, _PAIR.public_b64)


@pytest.fixture
def vault(config: Config) -> Vault:
    ensure_key_file(config.secret_key_file)
    return Vault.load(config.secret_key_file)


def keys_of(
    db: Database, vault: Vault, account_id: int, domain: str = "acme.com"
) -> list[SigningKey]:
    with db.read() as session:
        return signing_keys(session, vault.decrypt, account_id, domain)


def publish(zone: ZoneServer, db: Database) -> None:
    zone.clear()
    with db.read() as session:
        for key in list_keys(session):
            name, value = record(key)
            zone.set(name, "TXT", value)


def verified_by_dkimpy(signed: bytes, zone: ZoneServer, count: int) -> list[bool]:
    resolver = Resolver(DnsConfig(nameservers=(zone.address,), timeout=2.0))

    def txt(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        found = resolver.txt(text.rstrip("."))
        return found[0] if found else None

    checker = dkim.DKIM(signed)
    out = []
    for index in range(count):
        try:
            out.append(bool(checker.verify(idx=index, dnsfunc=txt)))
        except dkim.ValidationError:  # a body hash mismatch is raised, not returned
            out.append(False)
    return out


def signature_tags(signed: bytes) -> list[dict[str, str]]:
    out = []
    for header in re.findall(rb"DKIM-Signature:(.*?)\r\n(?! )", signed, re.S):
        text = re.sub(r"\s+", "", header.decode())
        out.append(dict(part.split("=", 1) for part in text.split(";") if part))
    return out


def test_rsa_and_ed25519_signatures_verify_through_dns(
    db: Database, config: Config, account_id: int, vault: Vault, zone_server: ZoneServer
) -> None:
    with db.session() as session:
        account = get_account(session)
        generate(session, vault, account, "acme.com")
        generate(session, vault, account, "ACME.com.", "ed25519")  # normalized
    publish(zone_server, db)
    keys = keys_of(db, vault, account_id)
    assert [k.algorithm for k in keys] == ["rsa", "ed25519"]
    signed = Signer().sign(MESSAGE, keys)
    assert signed.endswith(MESSAGE)
    assert verified_by_dkimpy(signed, zone_server, 2) == [True, True]

    tags = signature_tags(signed)
    assert [t["a"] for t in tags] == ["rsa-sha256", "ed25519-sha256"]  # never sha1
    for t in tags:
        assert t["c"] == "relaxed/relaxed" and t["d"] == "acme.com" and "l" not in t
        signed_headers = t["h"].split(":")
        assert signed_headers.count("from") == 2  # oversigned
        for name in ("to", "cc", "subject", "date", "message-id", "in-reply-to"):
            assert name in signed_headers
        for name in ("references", "mime-version", "content-type"):
            assert name in signed_headers
        assert "x-mailer" not in signed_headers


def test_what_a_signature_protects(
    db: Database, config: Config, account_id: int, vault: Vault, zone_server: ZoneServer
) -> None:
    with db.session() as session:
        generate(session, vault, get_account(session), "acme.com")
    publish(zone_server, db)
    signed = Signer().sign(MESSAGE, keys_of(db, vault, account_id))
    head, _, body = signed.partition(b"\r\n\r\n")
    # Relaxed canonicalization: refolding and trailing spaces do not matter...
    refolded = signed.replace(b"Subject: Our offer", b"Subject:  Our\r\n offer")
    assert verified_by_dkimpy(refolded, zone_server, 1) == [True]
    # ...a changed body, a changed subject or a second From added on top do.
    for tampered in (
        head + b"\r\n\r\n" + body.replace(b"Carol", b"Mallory"),
        signed.replace(b"Subject: Our offer", b"Subject: Our new offer"),
        b"From: ceo@acme.com\r\n" + signed,
    ):
        assert verified_by_dkimpy(tampered, zone_server, 1) == [False]


def test_a_signature_that_does_not_verify_never_leaves(
    db: Database, config: Config, account_id: int, vault: Vault
) -> None:
    with db.session() as session:
        generate(session, vault, get_account(session), "acme.com")
        generate(session, vault, get_account(session), "client.com")
    [good] = keys_of(db, vault, account_id, "acme.com")
    [other] = keys_of(db, vault, account_id, "client.com")
    mismatched = type(good)(good.domain, good.selector, "rsa", other.private_pem, good.public_b64)
    with pytest.raises(SigningError):
        Signer().sign(MESSAGE, [mismatched])


def test_only_the_accounts_own_domains_are_signed(
    db: Database, config: Config, account_id: int, vault: Vault
) -> None:
    with db.session() as session:
        generate(session, vault, get_account(session), "acme.com")
        other = create_account(session, "other")
        session.flush()
        other_id = other.id
    assert keys_of(db, vault, account_id, "gmail.com") == []  # not ours: left unsigned
    assert keys_of(db, vault, other_id, "acme.com") == []  # another account's domain
    assert Signer().sign(MESSAGE, []) == MESSAGE


def test_keys_are_encrypted_at_rest_and_rotated(
    db: Database, config: Config, account_id: int, vault: Vault
) -> None:
    with db.session() as session:
        account = get_account(session)
        first = generate(session, vault, account, "acme.com", selector="s1")
        with pytest.raises(Conflict):
            generate(session, vault, account, "acme.com")
        new, old = rotate(session, vault, account, "acme.com", selector="s2")
        assert old is not None and old.selector == "s1"
    with db.read() as session:
        rows = {k.selector: k for k in session.scalars(select(DkimKey))}
    assert "PRIVATE KEY" not in rows["s1"].private_key
    assert "PRIVATE KEY" in vault.decrypt(rows["s1"].private_key)
    assert (rows["s1"].state, rows["s2"].state) == ("retired", "active")
    assert [k.selector for k in keys_of(db, vault, account_id)] == ["s2"]
    assert first.public_key != new.public_key


_BODY_BYTES = st.lists(
    st.sampled_from([b" ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"b", b".", b"\xc3\xa9", b"  \t "]),
    max_size=60,
).map(b"".join)


@given(_BODY_BYTES)
@settings(max_examples=500, deadline=None)
def test_the_body_canonical_form_is_dkimpys(body: bytes) -> None:
    """The fast relaxed body canonicalisation gives what dkimpy's does, byte for byte
    (spaces, tabs, runs of both, line ends, trailing empty lines, empty bodies)."""
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    assert relaxed_body(body) == policy.canonicalize_body(body)


@given(_BODY_BYTES)
@settings(max_examples=100, deadline=None)
def test_any_body_signed_verifies_with_dkimpy(body: bytes) -> None:
    signer = Signer()
    raw = b"From: bob@acme.com\r\nTo: carol@client.test\r\nSubject: hi\r\n\r\n" + body
    signed = signer.sign(raw, [_KEY])  # raises SigningError unless dkimpy verifies it
    assert signed.endswith(raw)
