"""Unattached dropbox mail and quarantine over real HTTP: create a contact from a
message's address, attach an address to an existing contact, approve and reject held
mail; a member sees and acts on only their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from gateway.accounts import get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Contact, Keep, Sighting, Source
from gateway.pipeline import Pipeline
from gateway.store import Arrival, MessageStore
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.mail import make_message
from tests.helpers.pipeline import attached, contact, push
from tests.helpers.web import running_web

PASSWORD = "a long enough password"
HERE = "/inbox/unattached"


@dataclass
class Desk:
    url: str
    db: Database
    config: Config
    ids: dict[str, int]
    people: list[Person] = field(default_factory=list)

    def person(self, email: str) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in(email, PASSWORD).status_code == 303
        return found


def _held(db: Database, config: Config, user: str, subject: str) -> int:
    with db.session() as session:
        user_id = get_user(session, config, user).id
    raw = make_message(from_="Eve <eve@spoof.example>", to=user, subject=subject)
    arrival = Arrival(
        user_id,
        Source.DROPBOX,
        Keep.ALWAYS,
        auth_results="gateway; spf=fail smtp.mailfrom=spoof.example; dkim=none; dmarc=fail",
        quarantined=True,
    )
    return MessageStore(db).accept(raw, arrival).sighting_id


@pytest.fixture
def desk(db: Database, config: Config, account_id: int) -> Iterator[Desk]:
    ensure_key_file(config.secret_key_file)
    contact(db, config, account_id, "carol@client.com", name="Carol")
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
    ids = {
        "lead": push(
            db,
            config,
            make_message(from_="Frank Lead <frank@newco.example>", subject="Interested"),
            source=Source.DROPBOX,
        ).message_id
        or 0,
        "alias": push(
            db,
            config,
            make_message(from_="Carol <carol.h@client-home.example>", subject="From home"),
            source=Source.DROPBOX,
        ).message_id
        or 0,
        "anns": push(
            db,
            config,
            make_message(from_="gus@other.example", to="ann@acme.com", subject="Ann's lead"),
            source=Source.DROPBOX,
            user="ann@acme.com",
        ).message_id
        or 0,
        "held": _held(db, config, "bob@acme.com", "Invoice overdue"),
        "anns_held": _held(db, config, "ann@acme.com", "Ann's held one"),
    }
    with running_web(db, config) as url:
        found = Desk(url, db, config, ids)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def test_lists_only_the_members_own_unattached_and_held_mail(desk: Desk) -> None:
    bob = desk.person("bob@acme.com")
    page = bob.get(HERE)
    assert page.status_code == 200
    assert "Interested" in page.text and "From home" in page.text
    assert "Ann&#39;s lead" not in page.text and "Ann&#39;s held one" not in page.text
    assert "Invoice overdue" in page.text and "spf=fail dkim=none dmarc=fail" in page.text
    # The addresses offered are the message's own, never a user's or a dropbox's.
    assert 'value="frank@newco.example"' in page.text
    assert 'value="bob@acme.com"' not in page.text
    assert 'value="Frank Lead"' in page.text  # the name it came with
    assert 'href="/inbox/unattached"' in bob.get("/inbox").text


def test_create_a_contact_from_a_messages_address(desk: Desk) -> None:
    bob = desk.person("bob@acme.com")
    done = bob.form(
        HERE,
        f"{HERE}/{desk.ids['lead']}/create",
        address="frank@newco.example",
        name="Frank Lead",
    )
    assert done.status_code == 303 and done.headers["location"] == f"{HERE}?done=created"
    with desk.db.read() as session:
        frank = session.scalars(select(Contact).where(Contact.name == "Frank Lead")).one()
        assert (frank.source, frank.source_message_id) == ("manual", desk.ids["lead"])
    assert frank.id in attached(desk.db, desk.ids["lead"])
    after = bob.get(f"{HERE}?done=created").text
    assert "Contact created" in after and "Interested" not in after
    assert "Interested" in bob.get("/inbox").text  # now in the Inbox
    # An address that is not the message's is refused.
    refused = bob.form(
        HERE, f"{HERE}/{desk.ids['alias']}/create", address="mallory@evil.example", name="M"
    )
    assert refused.status_code == 422 and "choose one of the message" in refused.text


def test_attach_an_address_to_an_existing_contact(desk: Desk) -> None:
    bob = desk.person("bob@acme.com")
    done = bob.form(
        HERE,
        f"{HERE}/{desk.ids['alias']}/attach",
        address="carol.h@client-home.example",
        contact="carol@client.com",
    )
    assert done.status_code == 303 and done.headers["location"] == f"{HERE}?done=attached"
    with desk.db.read() as session:
        carol = session.scalars(select(Contact).where(Contact.name == "Carol")).one()
        assert sorted(e.address for e in carol.emails) == [
            "carol.h@client-home.example",
            "carol@client.com",
        ]
    assert carol.id in attached(desk.db, desk.ids["alias"])
    unknown = bob.form(
        HERE, f"{HERE}/{desk.ids['lead']}/attach", address="frank@newco.example", contact="x@y.z"
    )
    assert unknown.status_code == 422 and "no contact has the address x@y.z" in unknown.text


def test_approve_and_reject_held_mail(desk: Desk) -> None:
    bob = desk.person("bob@acme.com")
    # Another member's held mail is not bob's to decide on.
    assert bob.form(HERE, f"/inbox/quarantine/{desk.ids['anns_held']}/approve").status_code == 404
    approved = bob.form(HERE, f"/inbox/quarantine/{desk.ids['held']}/approve")
    assert approved.headers["location"] == f"{HERE}?done=approved"
    with desk.db.read() as session:
        assert session.get_one(Sighting, desk.ids["held"]).state == "pending"
    Pipeline(desk.db, desk.config).process([desk.ids["held"]])
    with desk.db.read() as session:
        assert session.get_one(Sighting, desk.ids["held"]).state != "quarantined"
    ann = desk.person("ann@acme.com")
    rejected = ann.form(HERE, f"/inbox/quarantine/{desk.ids['anns_held']}/reject")
    assert rejected.headers["location"] == f"{HERE}?done=rejected"
    with desk.db.read() as session:
        gone = session.get_one(Sighting, desk.ids["anns_held"])
        assert gone.state == "discarded" and gone.raw_message_id is None
    assert "Nothing is held." in ann.get(HERE).text
    # Deciding twice: nothing left to decide.
    again = ann.form(HERE, f"/inbox/quarantine/{desk.ids['anns_held']}/approve")
    assert again.status_code == 404
    # A form without its token changes nothing.
    stale = bob.client.post(f"/inbox/quarantine/{desk.ids['held']}/reject", data={})
    assert stale.headers["location"] == f"{HERE}?done=stale"


def test_a_member_cannot_act_on_anothers_message(desk: Desk) -> None:
    bob = desk.person("bob@acme.com")
    answer = bob.form(
        HERE, f"{HERE}/{desk.ids['anns']}/create", address="gus@other.example", name="Gus"
    )
    assert answer.status_code == 404
    with desk.db.read() as session:
        assert not session.scalars(select(Contact).where(Contact.name == "Gus")).all()
    assert re.search(r"Ann&#39;s lead", desk.person("ann@acme.com").get(HERE).text)
