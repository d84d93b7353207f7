"""The meetings of a new message: each invitation it carries (calendar parts, .ics
files, winmail.dat) applied to the store (gateway.meetings), one savepoint each.

Read ahead outside the write transaction, with the message's parse. Nothing here
stops the mail: a calendar that cannot be read is skipped where it is read, and an
invitation that fails to apply is rolled back alone and logged, the message kept.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.directory import AccountDirectory
from gateway.mail_invites import Found, invites_in, may_carry
from gateway.meetings import Origin, apply_invite
from gateway.pipeline.work import Work
from gateway.pipeline.writes import Writes

log = logging.getLogger(__name__)


def read_invites(data: bytes | None) -> Found:
    """The invitations in a message; none for one without a calendar (a byte scan)."""
    if not data or not may_carry(data):
        return Found()
    try:
        return invites_in(data)
    except Exception as exc:  # the MIME tree itself beyond reading: the mail goes on
        log.info("calendar parts not read: %s", exc)
        return Found(problems=[str(exc)[:300]])


def apply_meetings(
    session: Session,
    writes: Writes,
    config: Config,
    work: Work,
    directory: AccountDirectory,
    message_id: int,
    found: Found,
) -> list[int]:
    """Apply the message's invitations; the meetings they changed."""
    if not found.invites:
        return []
    writes.flush(session)  # the message's own rows and events come first
    origin = Origin("mail", user_id=work.user_id, message_id=message_id)
    changed = []
    for invite in found.invites:
        try:
            with session.begin_nested():
                applied = apply_invite(session, config, directory, invite, origin)
        except Exception:
            log.exception(
                "message %s: invitation %s (%s) not applied", message_id, invite.uid, invite.method
            )
            continue
        if applied is not None and applied.change:
            changed.append(applied.meeting_id)
    return changed
