"""The Contacts pages over real HTTP: the list with its search and empty state, a
contact's page with its conversations (a member sees only mail their own sources
saw), how the contact came to be, and "Mail with this contact missing?"; another
account's contacts are never shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.accounts import create_account, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Source
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.mail import make_message
from tests.helpers.pipeline import contact, push
from tests.helpers.web import running_web

PASSWORD = "a long enough password"


@pytest.fixture
def people(db: Database, config: Config, account_id: int) -> Iterator[dict[str, Person]]:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        create_account(session, "other")
    with running_web(db, config) as url:
        found = {name: Person(url) for name in ("bob", "ann")}
        try:
            for name, person in found.items():
                assert person.sign_in(f"{name}@acme.com", PASSWORD).status_code == 303
            yield found
        finally:
            for person in found.values():
                person.close()


def test_contacts_list_search_and_page(
    db: Database, config: Config, account_id: int, people: dict[str, Person]
) -> None:
    bob, ann = people["bob"], people["ann"]
    assert "No contact yet" in bob.get("/contacts").text
    carol = contact(db, config, account_id, "carol@client.com", name="Carol Client")
    contact(db, config, account_id, "dan@else.org", name="Dan")
    with db.session() as session:
        other = create_account(session, "third")
        session.flush()
        other_id = other.id
    theirs = contact(db, config, other_id, "zed@zed.example", name="Zed")
    listed = bob.get("/contacts").text
    assert "Carol Client" in listed and "Dan" in listed and "Zed" not in listed
    found = bob.get("/contacts", params={"q": "CLIENT.com"}).text
    assert "Carol Client" in found and "Dan" not in found
    assert "No contact matches" in bob.get("/contacts", params={"q": "nobody"}).text
    push(db, config, make_message(subject="Hello", message_id="<h1@client.com>"))
    reply = make_message(
        from_="bob@acme.com",
        to="carol@client.com",
        subject="Re: Hello",
        message_id="<h2@acme.com>",
        in_reply_to="<h1@client.com>",
    )
    push(db, config, reply, source=Source.OUTBOUND, key="outbound:1")
    page = bob.get(f"/contacts/{carol}").text
    assert "Hello" in page and "Re: Hello" in page and "→" in page and "←" in page
    assert "imported" in page or "added by hand" in page
    assert "No mail with this contact yet in your mailboxes" in ann.get(f"/contacts/{carol}").text
    why = bob.get(f"/contacts/{carol}", params={"message_id": "<h1@client.com>"}).text
    assert "is on its contacts by carol@client.com" in why
    never = bob.get(f"/contacts/{carol}", params={"message_id": "<nope@x>"}).text
    assert "never" in never.lower()
    assert bob.get(f"/contacts/{theirs}").status_code == 404
