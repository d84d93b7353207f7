"""Meeting invitations read from mail in the shapes real clients send (tests/peers/
invites.py): Google's twin parts as one invite, Outlook's Windows time zones and its
REPLY without an organizer, iCloud without SEQUENCE, Zoom's PUBLISH with ";;", a
CANCEL, a series with a moved occurrence, and a broken calendar that is skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.mail_invites import invites_in
from tests.helpers.mail import make_message
from tests.peers import invites, tnef


def test_google_sends_one_event_twice_and_it_is_one_invite() -> None:
    found = invites_in(invites.google())
    assert found.problems == []
    (invite,) = found.invites
    assert invite.method == "REQUEST" and invite.invitation
    assert invite.uid == "7kukuqrfedlm2f9t0vr8u4bp5k@google.com"
    assert invite.start == datetime(2026, 12, 10, 15, tzinfo=UTC) and invite.timezone == "UTC"
    assert invite.organizer is not None and invite.organizer.email == "carol@client.com"
    assert invite.conference_url == "https://meet.google.com/abc-defg-hij"
    people = {a.email: a for a in invite.attendees}
    assert people["carol@client.com"].status == "ACCEPTED"
    assert people["bob@acme.com"].status == "NEEDS-ACTION"
    room = people["c_1888abc@resource.calendar.google.com"]
    assert room.resource and not people["bob@acme.com"].resource


def test_outlook_windows_time_zones_are_mapped() -> None:
    (invite,) = invites_in(invites.outlook_request()).invites
    assert invite.timezone == "Europe/Berlin"
    assert invite.start == datetime(2026, 12, 14, 9, tzinfo=UTC)  # 10:00 CET
    assert invite.end == datetime(2026, 12, 14, 10, 30, tzinfo=UTC)
    assert invite.conference_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert {a.role for a in invite.attendees} == {"REQ-PARTICIPANT", "OPT-PARTICIPANT"}


def test_an_outlook_reply_has_no_organizer() -> None:
    (reply,) = invites_in(invites.outlook_reply("DECLINED")).invites
    assert reply.method == "REPLY" and reply.organizer is None
    assert [(a.email, a.status) for a in reply.attendees] == [("erin@partner.example", "DECLINED")]


def test_icloud_without_sequence_counts_as_version_zero() -> None:
    (invite,) = invites_in(invites.icloud()).invites
    assert invite.sequence == 0 and invite.timezone == "America/New_York"
    assert invite.start == datetime(2026, 12, 11, 14, tzinfo=UTC)
    assert invite.source == "iCal-20261205-140000.ics"


def test_zoom_publish_is_not_an_invitation() -> None:
    (published,) = invites_in(invites.zoom_publish()).invites
    assert published.method == "PUBLISH" and not published.invitation
    assert published.conference_url == "https://us02web.zoom.us/j/87654321"


def test_a_cancel_marks_the_meeting_cancelled() -> None:
    (cancelled,) = invites_in(invites.cancel(sequence=1)).invites
    assert cancelled.method == "CANCEL" and cancelled.cancelled and cancelled.sequence == 1


def test_a_series_with_one_moved_occurrence() -> None:
    found = invites_in(invites.recurring_with_a_moved_occurrence()).invites
    series = next(i for i in found if i.recurrence_id is None)
    moved = next(i for i in found if i.recurrence_id is not None)
    assert series.rrule == "FREQ=WEEKLY;COUNT=10;BYDAY=MO" and series.uid == moved.uid
    assert moved.recurrence_id == "20261214T080000Z"  # the occurrence it replaces, in UTC
    assert moved.start == datetime(2026, 12, 15, 13, tzinfo=UTC)
    assert moved.summary == "Weekly sync (moved)"


def test_a_broken_calendar_is_skipped_and_the_mail_is_not() -> None:
    found = invites_in(invites.broken())
    assert found.invites == [] and len(found.problems) == 1
    assert found.problems[0].startswith("call.ics")
    assert invites_in(make_message()).invites == []  # mail without a calendar


def test_the_newest_version_of_an_event_wins() -> None:
    old, new = invites.google_event(0, "Old"), invites.google_event(2, "New")
    boundary = "x"
    raw = (
        "From: carol@client.com\r\nTo: bob@acme.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
        + new.decode()
        + f"--{boundary}\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
        + old.decode()
        + f"--{boundary}--\r\n"
    ).encode()
    (invite,) = invites_in(raw).invites
    assert (invite.sequence, invite.summary) == (2, "New")


def test_an_outlook_invitation_only_in_winmail_dat_is_read() -> None:
    found = invites_in(tnef.outlook_tnef_only())
    assert found.problems == []
    (invite,) = found.invites
    assert invite.method == "REQUEST" and invite.source == "winmail.dat"
    assert (
        invite.uid
        == tnef.global_object_id(bytes.fromhex("8b6e5a0c1d2e3f405162738495a6b7c8")).hex().upper()
    )
    assert invite.summary == "Budget 2027" and invite.location == "Room 4.12"
    assert invite.start == datetime(2026, 12, 16, 13, tzinfo=UTC)
    assert invite.end == datetime(2026, 12, 16, 14, tzinfo=UTC)
    assert invite.timezone == "Europe/Berlin"
    assert invite.dtstamp == datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert invite.organizer is not None and invite.organizer.email == "frank@partner.example"
    roles = {a.email: a.role for a in invite.attendees}
    assert roles == {"bob@acme.com": "REQ-PARTICIPANT", "grace@partner.example": "OPT-PARTICIPANT"}


def test_a_tnef_cancellation_and_a_uid_carried_in_the_object_id() -> None:
    data = tnef.meeting_tnef(
        message_class="IPM.Schedule.Meeting.Canceled",
        sequence=2,
        marker=b"vCal-Uid\x01\x00\x00\x00shared-uid-42@partner.example\x00",
    )
    (invite,) = invites_in(tnef.outlook_tnef_only(data)).invites
    assert invite.method == "CANCEL" and invite.cancelled
    assert invite.uid == "shared-uid-42@partner.example" and invite.sequence == 2


def test_a_broken_winmail_dat_is_a_problem_not_an_error() -> None:
    found = invites_in(tnef.outlook_tnef_only(b"\x78\x9f\x3e\x22" + b"\xff" * 40))
    assert found.invites == []
    found = invites_in(tnef.outlook_tnef_only(b"not tnef at all"))
    assert found.invites == [] and found.problems
