"""What one synced calendar holds, written to the store.

Each resource (a CalDAV href, a Graph event id) is a CalendarEntry with its ETag and
UID; its events are applied as snapshots (gateway.meetings: the calendar's copy is
what it holds now). A page of resources is one transaction, each event in its own
savepoint, so one event that cannot be applied does not stop the rest. A resource
gone from the calendar cancels its meetings unless another calendar of the account
still holds the UID or the meeting came by mail too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.calendar_invites import Invite
from gateway.config import Config
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.leases import Fence
from gateway.meetings import (
    Origin,
    apply_invite,
    cancel_meetings,
    create_meetings,
    find_many,
)
from gateway.models import Calendar, CalendarEntry, CalendarKind, Mailbox, Meeting, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    href: str
    etag: str
    invites: Sequence[Invite]


@dataclass
class Tally:
    changed: int = 0  # resources written
    removed: int = 0
    meetings: int = 0  # meetings created, updated or cancelled


class CalendarWriter:
    """Writes the resources of one calendar of a mailbox."""

    def __init__(
        self,
        db: Database,
        config: Config,
        calendar_id: int,
        source: str,
        fence: Fence | None = None,
    ) -> None:
        self.db = db
        self.fence = fence  # in the transaction of every write
        self.config = config
        self.calendar_id = calendar_id
        self.source = source
        with db.read() as session:
            calendar = session.get_one(Calendar, calendar_id)
            mailbox = session.get_one(Mailbox, calendar.mailbox_id)
            self.account_id = mailbox.account_id
            self.user_id = mailbox.user_id
        self.tally = Tally()

    def etags(self) -> dict[str, str]:
        """href -> ETag of every resource as last written."""
        with self.db.read() as session:
            rows = session.execute(
                select(CalendarEntry.href, CalendarEntry.etag).where(
                    CalendarEntry.calendar_id == self.calendar_id
                )
            )
            return {str(href): str(etag) for href, etag in rows}

    def put(self, resources: Iterable[Resource]) -> None:
        """Write a page of resources (their events as the calendar holds them)."""
        resources = [r for r in resources if r.invites]
        if not resources:
            return
        origin = Origin(self.source, user_id=self.user_id, snapshot=True)
        with self.db.session() as session:
            self._fenced(session)
            directory = AccountDirectory.load_by_id(session, self.account_id, self.config)
            try:
                with session.begin_nested():  # the page at once, as a rule
                    self._apply(session, directory, resources, origin, one_by_one=False)
            except Exception:
                log.exception("calendar %s: a page failed; one event at a time", self.calendar_id)
                self._apply(session, directory, resources, origin, one_by_one=True)

    def _apply(
        self,
        session: Session,
        directory: AccountDirectory,
        resources: list[Resource],
        origin: Origin,
        one_by_one: bool,
    ) -> None:
        known_entries = {
            e.href: e
            for e in session.scalars(
                select(CalendarEntry).where(
                    CalendarEntry.calendar_id == self.calendar_id,
                    CalendarEntry.href.in_([r.href for r in resources]),
                )
            )
        }
        uids = sorted({i.uid for r in resources for i in r.invites})
        meetings = find_many(session, self.account_id, uids)
        changed = meetings_changed = 0
        fresh: dict[tuple[str, str], Invite] = {}  # none of these exists yet: at once
        for resource in resources:  # the tally counts only when the whole page is written
            entry = known_entries.get(resource.href)
            if entry is None:
                entry = CalendarEntry(
                    calendar_id=self.calendar_id, account_id=self.account_id, href=resource.href
                )
                session.add(entry)
                known_entries[resource.href] = entry
            entry.etag = resource.etag[:200]
            entry.uid = resource.invites[0].uid
            for invite in resource.invites:
                if one_by_one:
                    try:
                        with session.begin_nested():
                            applied = apply_invite(session, self.config, directory, invite, origin)
                    except Exception:
                        log.exception("calendar %s: %s not applied", self.calendar_id, invite.uid)
                        continue
                elif invite.key not in meetings and not directory.auto_create:
                    if invite.key not in fresh or invite.version >= fresh[invite.key].version:
                        fresh[invite.key] = invite
                    continue
                else:
                    applied = apply_invite(
                        session, self.config, directory, invite, origin, meetings
                    )
                if applied is not None and applied.change:
                    meetings_changed += 1
                    if applied.change == "created" and not one_by_one:
                        meetings[invite.key] = session.get_one(Meeting, applied.meeting_id)
            changed += 1
        made = create_meetings(session, self.config, directory, list(fresh.values()), origin)
        meetings_changed += len(made)
        self.tally.changed += changed
        self.tally.meetings += meetings_changed

    def remove(self, hrefs: Iterable[str]) -> None:
        """Resources gone from the calendar: their entries, and meetings no one holds."""
        hrefs = list(hrefs)
        if not hrefs:
            return
        with self.db.session() as session:
            self._fenced(session)
            gone = session.execute(
                select(CalendarEntry.href, CalendarEntry.uid).where(
                    CalendarEntry.calendar_id == self.calendar_id,
                    CalendarEntry.href.in_(hrefs),
                )
            ).all()
            if not gone:
                return
            session.execute(
                delete(CalendarEntry).where(
                    CalendarEntry.calendar_id == self.calendar_id,
                    CalendarEntry.href.in_([href for href, _ in gone]),
                )
            )
            for _, uid in gone:
                self.tally.removed += 1
                if self._held_elsewhere(session, uid):
                    continue
                self.tally.meetings += len(
                    cancel_meetings(
                        session, self.account_id, uid, self.source, "removed from the calendar"
                    )
                )

    def finish(
        self,
        *,
        sync_token: str | None = None,
        ctag: str | None = None,
        window: tuple[datetime, datetime] | None = None,
    ) -> None:
        """A sync of the calendar went through: where it stands, and how many events."""
        with self.db.session() as session:
            self._fenced(session)
            row = session.get_one(Calendar, self.calendar_id)
            if sync_token is not None:
                row.sync_token = sync_token
            if ctag is not None:
                row.ctag = ctag
            if window is not None:
                row.window_start, row.window_end = window
            counted = select(func.count()).select_from(CalendarEntry)
            counted = counted.where(CalendarEntry.calendar_id == self.calendar_id)
            row.events = int(session.scalar(counted) or 0)
            row.synced_at = utcnow()
            row.last_error = None

    def _fenced(self, session: Session) -> None:
        if self.fence is not None:
            self.fence(session)

    def _held_elsewhere(self, session: Session, uid: str) -> bool:
        entries = session.scalar(
            select(func.count())
            .select_from(CalendarEntry)
            .where(CalendarEntry.account_id == self.account_id, CalendarEntry.uid == uid)
        )
        by_mail = session.scalar(
            select(func.count())
            .select_from(Meeting)
            .where(
                Meeting.account_id == self.account_id,
                Meeting.uid == uid,
                Meeting.message_id.is_not(None),
            )
        )
        return bool(entries) or bool(by_mail)


def calendar_row(db: Database, mailbox_id: int, kind: CalendarKind, url: str, name: str) -> int:
    """The id of the mailbox's calendar at `url`, made the first time it is seen."""
    with db.session() as session:
        row = session.scalar(
            select(Calendar).where(Calendar.mailbox_id == mailbox_id, Calendar.url == url)
        )
        if row is None:
            row = Calendar(mailbox_id=mailbox_id, kind=kind.value, url=url, name=name)
            session.add(row)
            session.flush()
        elif name and row.name != name:
            row.name = name
        return row.id


def sync_window(config: Config) -> tuple[datetime, datetime]:
    """The synced window: [calendar] days_back before now to days_ahead after."""
    now = utcnow().replace(microsecond=0)
    back, ahead = (
        timedelta(days=config.calendar.days_back),
        timedelta(days=config.calendar.days_ahead),
    )
    return now - back, now + ahead
