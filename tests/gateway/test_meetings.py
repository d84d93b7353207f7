"""Meetings from the invitations mail carries, through the pipeline: created,
updated by newer versions only, answered (REPLY), cancelled, one meeting however
many ways it arrives, never a broken mail; contacts from organizer and attendees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import Contact, Event, Meeting, Message, SightingState, Source
from tests.helpers.pipeline import contact, count, push, set_account
from tests.peers import invites, tnef


def meetings(db) -> list[Meeting]:
    with db.session() as session:
        found = session.scalars(select(Meeting).order_by(Meeting.id)).all()
        for meeting in found:
            _ = meeting.attendees
        session.expunge_all()
        return list(found)


def meeting_events(db) -> list[tuple[str, dict[str, Any]]]:
    with db.session() as session:
        rows = session.execute(
            select(Event.kind, Event.payload).where(Event.kind.like("meeting.%")).order_by(Event.id)
        )
        return [(kind, payload) for kind, payload in rows]


def renamed(raw: bytes, message_id: str) -> bytes:
    """The same mail under another Message-ID (a forward, another copy)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [
        f"Message-ID: {message_id}".encode() if line.lower().startswith(b"message-id:") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_a_google_invitation_becomes_one_meeting_on_its_contacts(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    outcome = push(db, config, invites.google(), source=Source.DROPBOX)
    assert outcome.created and len(outcome.meeting_ids) == 1
    (meeting,) = meetings(db)
    assert meeting.uid == "7kukuqrfedlm2f9t0vr8u4bp5k@google.com"
    assert meeting.summary == "Contract review" and meeting.status == "confirmed"
    assert meeting.start_at == datetime(2026, 12, 10, 15, tzinfo=UTC)
    assert meeting.conference_url == "https://meet.google.com/abc-defg-hij"
    assert meeting.organizer == "carol@client.com" and meeting.message_id == outcome.message_id
    people = {a.address: a for a in meeting.attendees}
    assert people["carol@client.com"].organizer and people["carol@client.com"].status == "ACCEPTED"
    assert people["c_1888abc@resource.calendar.google.com"].resource
    ((kind, payload),) = meeting_events(db)
    assert kind == "meeting.created"
    assert payload["contact_ids"] == [carol] and payload["method"] == "REQUEST"
    assert payload["summary"] == "Contract review" and payload["source"] == "mail"


def test_the_same_invitation_by_several_ways_is_one_meeting(db, config, account_id) -> None:
    push(db, config, invites.google(), source=Source.IMAP)
    push(db, config, renamed(invites.google(), "<fwd-1@acme.com>"), source=Source.DROPBOX)
    push(db, config, renamed(invites.google(), "<copy@acme.com>"), source=Source.OUTBOUND)
    assert len(meetings(db)) == 1
    assert [kind for kind, _ in meeting_events(db)] == ["meeting.created"]
    # Outlook's winmail.dat carrying the same UID is the same meeting too.
    data = tnef.meeting_tnef(
        sequence=0,
        stamp=datetime(2026, 12, 5, 13, tzinfo=UTC),
        marker=b"vCal-Uid\x01\x00\x00\x007kukuqrfedlm2f9t0vr8u4bp5k@google.com\x00",
    )
    push(db, config, tnef.outlook_tnef_only(data))
    (meeting,) = meetings(db)
    assert meeting.summary == "Budget 2027"  # its DTSTAMP is newer, at the same SEQUENCE


def test_a_newer_version_updates_and_an_older_one_does_not(db, config, account_id) -> None:
    push(db, config, invites.google(sequence=0))
    push(db, config, invites.google(sequence=2, summary="Contract review (moved)"))
    push(db, config, renamed(invites.google(sequence=1, summary="Stale"), "<late@google.com>"))
    (meeting,) = meetings(db)
    assert meeting.summary == "Contract review (moved)" and meeting.sequence == 2
    assert [kind for kind, _ in meeting_events(db)] == ["meeting.created", "meeting.updated"]


def test_an_outlook_reply_sets_the_attendees_answer(db, config, account_id) -> None:
    push(db, config, invites.outlook_request())
    push(db, config, invites.outlook_reply("ACCEPTED"))
    (meeting,) = meetings(db)
    people = {a.address: a for a in meeting.attendees}
    assert people["erin@partner.example"].status == "ACCEPTED"
    assert people["bob@acme.com"].status == "NEEDS-ACTION"
    assert meeting.organizer == "dan@partner.example"  # the REPLY named none: kept
    assert meeting.summary == "Quarterly review"  # not the reply's "Accepted: ..."
    # The invitation seen again (an older DTSTAMP) does not undo the answer.
    push(db, config, renamed(invites.outlook_request(), "<again@partner.example>"))
    (meeting,) = meetings(db)
    assert {a.address: a.status for a in meeting.attendees}["erin@partner.example"] == "ACCEPTED"
    assert [kind for kind, _ in meeting_events(db)] == ["meeting.created", "meeting.updated"]


def test_a_reply_before_its_invitation(db, config, account_id) -> None:
    push(db, config, invites.outlook_reply("DECLINED"))
    (meeting,) = meetings(db)
    assert meeting.from_reply and meeting.organizer == ""
    push(db, config, invites.outlook_request())
    (meeting,) = meetings(db)
    assert not meeting.from_reply and meeting.summary == "Quarterly review"
    assert meeting.organizer == "dan@partner.example"
    people = {a.address: a.status for a in meeting.attendees}
    assert people["erin@partner.example"] == "DECLINED"  # the answer is newer


def test_a_cancel_cancels_and_an_older_request_does_not_revive(db, config, account_id) -> None:
    push(db, config, invites.google(sequence=0))
    push(db, config, invites.cancel(sequence=1))
    (meeting,) = meetings(db)
    assert meeting.status == "cancelled" and meeting.summary == "Contract review"
    push(db, config, renamed(invites.google(sequence=0), "<old@google.com>"))
    assert meetings(db)[0].status == "cancelled"
    kinds = [kind for kind, _ in meeting_events(db)]
    assert kinds == ["meeting.created", "meeting.cancelled"]


def test_a_series_with_a_moved_occurrence_is_two_meetings(db, config, account_id) -> None:
    push(db, config, invites.recurring_with_a_moved_occurrence())
    series, moved = sorted(meetings(db), key=lambda m: m.recurrence_id)
    assert series.recurrence_id == "" and series.rrule.startswith("FREQ=WEEKLY")
    assert moved.recurrence_id != "" and moved.uid == series.uid
    assert moved.start_at != series.start_at


def test_icloud_without_sequence_and_tnef_only_invitations(db, config, account_id) -> None:
    push(db, config, invites.icloud())
    push(db, config, tnef.outlook_tnef_only())
    coffee, budget = meetings(db)
    assert coffee.sequence == 0 and coffee.timezone == "America/New_York"
    assert budget.summary == "Budget 2027" and budget.timezone == "Europe/Berlin"
    assert budget.location == "Room 4.12"


def test_publish_is_no_meeting(db, config, account_id) -> None:
    outcome = push(db, config, invites.zoom_publish())
    assert outcome.created and outcome.meeting_ids == []
    assert count(db, Meeting) == 0


def test_a_broken_calendar_never_stops_the_mail(db, config, account_id, monkeypatch) -> None:
    outcome = push(db, config, invites.broken())
    assert outcome.state == SightingState.DONE and outcome.created
    assert count(db, Meeting) == 0

    def fails(*args, **kwargs):
        raise RuntimeError("the meetings table is on fire")

    monkeypatch.setattr("gateway.pipeline.invitations.apply_invite", fails)
    outcome = push(db, config, invites.icloud())
    assert outcome.state == SightingState.DONE and outcome.created
    assert count(db, Meeting) == 0 and count(db, Message) == 2


def test_new_attendees_become_contacts_when_auto_create_is_on(db, config, account_id) -> None:
    set_account(db, account_id, auto_create_contacts=True, blocked_domains=["blocked.example"])
    data = invites.google_event().replace(
        b"X-GOOGLE-CONFERENCE",
        b"ATTENDEE;CN=Nora New:mailto:nora@newco.example\r\n"
        b"ATTENDEE:mailto:noreply@newco.example\r\n"
        b"ATTENDEE:mailto:x@blocked.example\r\n"
        b"ATTENDEE;CN=Ann:mailto:ann@acme.com\r\n"
        b"ATTENDEE;CUTYPE=ROOM;CN=Board room:mailto:board@rooms.example\r\n"
        + f"ATTENDEE:mailto:box@{config.dropbox.domain}\r\n".encode()
        + b"X-GOOGLE-CONFERENCE",
    )
    raw = (
        b"From: Carol Client <carol@client.com>\r\nTo: bob@acme.com\r\n"
        b"Subject: Invitation\r\nMessage-ID: <inv-9@google.com>\r\n"
        b"Content-Type: text/calendar; method=REQUEST; charset=UTF-8\r\n\r\n" + data
    )
    outcome = push(db, config, raw)
    with db.session() as session:
        made = {c.emails[0].address: c for c in session.scalars(select(Contact)).unique().all()}
        by_source = {address: (c.source, c.source_meeting_id) for address, c in made.items()}
    (meeting,) = meetings(db)
    assert by_source == {
        "carol@client.com": ("meeting", meeting.id),  # the organizer (From is never auto)
        "nora@newco.example": ("meeting", meeting.id),
    }
    assert made["nora@newco.example"].name == "Nora New"
    ((_, payload),) = meeting_events(db)
    assert sorted(payload["auto_created_contact_ids"]) == sorted(c.id for c in made.values())
    assert sorted(payload["contact_ids"]) == sorted(c.id for c in made.values())
    assert outcome.meeting_ids == [meeting.id]


@pytest.mark.parametrize("auto", [False, True])
def test_no_contacts_are_made_with_auto_create_off(db, config, account_id, auto) -> None:
    set_account(db, account_id, auto_create_contacts=auto)
    push(db, config, invites.outlook_request())
    assert (count(db, Contact) > 0) is auto


def test_a_series_happens_next_by_its_rule_in_its_own_zone() -> None:
    from gateway.meeting_queries import next_start

    weekly = Meeting(
        start_at=datetime(2026, 10, 5, 8, tzinfo=UTC),  # Monday 10:00 in Berlin (CEST)
        end_at=datetime(2026, 10, 5, 9, tzinfo=UTC),
        timezone="Europe/Berlin",
        rrule="FREQ=WEEKLY;BYDAY=MO",
    )
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    # Still 10:00 in Berlin after the clocks went back: 09:00 UTC.
    assert next_start(weekly, now) == datetime(2026, 12, 7, 9, tzinfo=UTC)
    during = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert next_start(weekly, during) == datetime(2026, 12, 7, 9, tzinfo=UTC)  # on now
    weekly.rrule = "FREQ=WEEKLY;BYDAY=MO;UNTIL=20261101T000000Z"
    assert next_start(weekly, now) is None  # over
    once = Meeting(start_at=datetime(2026, 12, 10, tzinfo=UTC), end_at=None, rrule="")
    assert next_start(once, now) == datetime(2026, 12, 10, tzinfo=UTC)
    assert next_start(once, datetime(2026, 12, 11, tzinfo=UTC)) is None
