"""/api/v1/meetings over real HTTP: meetings by contact, date range and status, a page
at a time; one meeting with its attendees and contacts; a member sees the meetings
of their own mail and those they are invited to, another account none."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.accounts import add_user, create_account, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.pipeline import contact, push
from tests.peers import invites, tnef


@dataclass
class Meetings:
    api: Any
    contacts: dict[str, int]
    people: list[Person] = field(default_factory=list)

    def get(self, path: str, token: str = "admin", **params: Any) -> Any:
        answer = self.api.call("GET", path, token, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def meetings(db: Database, config: Config, account_id: int) -> Iterator[Meetings]:
    from tests.helpers.web import ApiClient, running_web

    ensure_key_file(config.secret_key_file)
    carol = contact(db, config, account_id, "carol@client.com", name="Carol")
    dan = contact(db, config, account_id, "dan@partner.example", name="Dan")
    with db.session() as session:
        set_password(session, config, "bob@acme.com", "bob's own long password")
        set_password(session, config, "ann@acme.com", "ann's own long password")
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "admin": create_account_token(session, account_id, ["read"]).token,
            "other": create_account_token(session, other.id, ["read"]).token,
        }
    push(db, config, invites.google())  # bob's mail: Contract review, Dec 10, with Carol
    push(db, config, invites.outlook_request(), user="ann@acme.com")  # Dec 14, Dan; bob invited
    only_grace = tnef.meeting_tnef(attendees=[("Grace", "grace@partner.example", 1)])
    push(db, config, tnef.outlook_tnef_only(only_grace), user="ann@acme.com")  # Dec 16
    with running_web(db, config) as url:
        found = Meetings(ApiClient(url, tokens), {"carol": carol, "dan": dan})
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def summaries(listed: dict[str, Any]) -> list[str]:
    return [m["summary"] for m in listed["data"]]


def test_meetings_a_page_at_a_time(meetings: Meetings) -> None:
    first = meetings.get("/meetings", limit=2)
    assert summaries(first) == ["Contract review", "Quarterly review"]
    rest = meetings.get("/meetings", limit=2, cursor=first["next_cursor"])
    assert summaries(rest) == ["Budget 2027"] and rest["next_cursor"] is None
    wrong = meetings.api.call(
        "GET",
        "/meetings",
        "admin",
        params={"limit": 2, "cursor": first["next_cursor"], "status": "cancelled"},
    )
    assert wrong.status_code == 400


def test_by_contact_dates_and_status(meetings: Meetings) -> None:
    by_id = meetings.get("/meetings", contact_id=meetings.contacts["carol"])
    assert summaries(by_id) == ["Contract review"]
    by_address = meetings.get("/meetings", contact="Dan@Partner.example")
    assert summaries(by_address) == ["Quarterly review"]
    window = meetings.get("/meetings", since="2026-12-12T00:00:00Z", until="2026-12-15T00:00:00Z")
    assert summaries(window) == ["Quarterly review"]
    assert meetings.get("/meetings", status="cancelled")["data"] == []
    unknown = meetings.api.call(
        "GET", "/meetings", "admin", params={"contact": "x@nowhere.example"}
    )
    assert unknown.status_code == 404


def test_one_meeting_with_attendees_and_contacts(meetings: Meetings) -> None:
    (listed,) = meetings.get("/meetings", contact="carol@client.com")["data"]
    one = meetings.get(f"/meetings/{listed['id']}")
    assert one["uid"] == "7kukuqrfedlm2f9t0vr8u4bp5k@google.com"
    assert one["start"] == "2026-12-10T15:00:00+00:00" and one["status"] == "confirmed"
    assert one["conference_url"] == "https://meet.google.com/abc-defg-hij"
    assert one["contacts"] == [{"id": meetings.contacts["carol"], "email": "carol@client.com"}]
    people = {a["email"]: a for a in one["attendees"]}
    assert (
        people["carol@client.com"]["organizer"]
        and people["carol@client.com"]["status"] == "ACCEPTED"
    )
    assert people["c_1888abc@resource.calendar.google.com"]["resource"]
    assert one["source"] == "mail" and one["message_id"]


def test_a_member_sees_their_own_and_where_they_are_invited(meetings: Meetings) -> None:
    bob = Person(meetings.api.url)
    meetings.people.append(bob)
    assert bob.sign_in("bob@acme.com", "bob's own long password").status_code == 303
    mine = bob.api("GET", "/meetings").json()
    # Google's came by bob's mail; Outlook's came by Ann's but invites bob.
    assert summaries(mine) == ["Contract review", "Quarterly review"]
    budget = meetings.get("/meetings", contact="dan@partner.example")["data"][0]["id"] + 1
    assert bob.api("GET", f"/meetings/{budget}").status_code == 404
    assert meetings.get("/meetings", token="other")["data"] == []
    for meeting_id in (budget, budget - 1):
        answer = meetings.api.call("GET", f"/meetings/{meeting_id}", "other")
        assert answer.status_code == 404
