"""The Meetings page and a contact's meetings over real HTTP: upcoming soonest first,
past latest first, cancelled ones marked, for everyone or one contact; a member sees
the meetings of their own mail and those they are invited to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.accounts import set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import User
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.pipeline import contact, push
from tests.helpers.web import running_web

PASSWORD = "a long enough password"


def invitation(
    uid: str, start: str, summary: str, attendees: str, method: str = "REQUEST", rule: str = ""
) -> bytes:
    """An invitation from Carol, in the plain shape most calendars send."""
    people = "".join(f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{a}\r\n" for a in attendees.split())
    ics = (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nMETHOD:{method}\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nSEQUENCE:"
        f"{1 if method == 'CANCEL' else 0}\r\nDTSTART:{start}\r\nDTEND:{start[:9]}235900Z\r\n"
        f"SUMMARY:{summary}\r\nLOCATION:Room 7\r\nORGANIZER:mailto:carol@client.com\r\n"
        + (f"RRULE:{rule}\r\n" if rule else "")
        + f"{people}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return (
        f"From: Carol <carol@client.com>\r\nTo: bob@acme.com\r\nSubject: {summary}\r\n"
        f"Message-ID: <{uid}-{method}@client.com>\r\nDate: Sun, 01 Nov 2026 00:00:00 +0000\r\n"
        f"Content-Type: text/calendar; method={method}; charset=utf-8\r\n\r\n{ics}"
    ).encode()


@pytest.fixture
def people(db: Database, config: Config, account_id: int) -> Iterator[dict[str, Person]]:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        session.scalars(select(User).where(User.email == "ann@acme.com")).one().is_admin = True
    with running_web(db, config) as url:
        found = {name: Person(url) for name in ("bob", "ann")}
        try:
            for name, person in found.items():
                assert person.sign_in(f"{name}@acme.com", PASSWORD).status_code == 303
            yield found
        finally:
            for person in found.values():
                person.close()


def test_upcoming_and_past_meetings_by_contact(
    db: Database, config: Config, account_id: int, people: dict[str, Person]
) -> None:
    bob, ann = people["bob"], people["ann"]
    assert "No meetings yet" in bob.get("/meetings").text
    carol = contact(db, config, account_id, "carol@client.com", name="Carol Client")
    dan = contact(db, config, account_id, "dan@partner.example", name="Dan")
    push(db, config, invitation("later", "20270110T100000Z", "Kick-off 2027", "bob@acme.com"))
    push(db, config, invitation("soon", "20261220T100000Z", "Year review", "dan@partner.example"))
    push(db, config, invitation("done", "20261020T100000Z", "Autumn check-in", "bob@acme.com"))
    push(db, config, invitation("off", "20261221T100000Z", "Dropped", "bob@acme.com"))
    push(db, config, invitation("off", "20261221T100000Z", "Dropped", "bob@acme.com", "CANCEL"))
    push(
        db,
        config,
        invitation("anns", "20261222T100000Z", "Ann only", "erin@partner.example"),
        user="ann@acme.com",
    )

    weekly = "FREQ=WEEKLY;BYDAY=MO"
    push(
        db,
        config,
        invitation("1on1", "20261005T080000Z", "Weekly 1:1", "bob@acme.com", rule=weekly),
    )
    ended = weekly + ";UNTIL=20261101T000000Z"
    push(
        db, config, invitation("old", "20261006T080000Z", "Old series", "bob@acme.com", rule=ended)
    )
    upcoming, past = ann.get("/meetings").text.split("<h2>Past</h2>")  # an admin: all
    assert "Weekly 1:1" in upcoming and "Repeats since 2026-10-05" in upcoming
    assert "Weekly 1:1" not in past and "Old series" in past
    order = [upcoming.index(s) for s in ("Year review", "Dropped", "Ann only", "Kick-off 2027")]
    assert order == sorted(order)  # soonest first
    assert "Autumn check-in" in past and "Autumn check-in" not in upcoming
    assert "Cancelled" in upcoming and "Room 7" in upcoming
    assert f'<a href="/contacts/{carol}">Carol Client</a>' in upcoming

    by_dan = bob.get("/meetings", params={"contact": dan}).text
    assert "Meetings with Dan" in by_dan and "Year review" in by_dan
    assert "Kick-off 2027" not in by_dan
    assert bob.get("/meetings", params={"contact": 999999}).status_code == 404

    mine = bob.get("/meetings").text  # a member: his own mail's, and where he is invited
    assert "Kick-off 2027" in mine and "Ann only" not in mine

    card = bob.get(f"/contacts/{dan}").text
    assert "Year review" in card and f'href="/meetings?contact={dan}"' in card
    assert "Kick-off 2027" not in card
