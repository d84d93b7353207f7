"""Microsoft 365 and Outlook.com calendars: Microsoft Graph's calendarView delta.

The first sync asks /me/calendarView/delta for the window and follows
@odata.nextLink page by page (Prefer: odata.maxpagesize) until the last page gives
an @odata.deltaLink, which is kept; each later sync follows the deltaLink and gets
only what changed, removed events as {"@removed": ...}. Each page is written as it
comes, so memory holds one page.

The token: Graph is another resource than IMAP, so a Graph access token is asked
for with the mailbox's refresh token ([calendar] graph_scope); a 401 gets one more
refresh, a second 401 is MailboxError("auth") (reconnect_required). A 429 or 503 is
waited out by its Retry-After (at most MAX_WAIT, else tried next pass). A 410
(the delta token expired) starts the first sync again. Links pointing off Graph's
origin are refused: the token goes nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from gateway.calendar_invites import Attendee, Invite, iana_zone
from gateway.config import Config
from gateway.db import Database
from gateway.imap.connection import AUTH, PROTOCOL, THROTTLED, UNREACHABLE, MailboxError
from gateway.leases import Fence
from gateway.models import Calendar, CalendarKind
from gateway.oauth2 import Tokens
from inbound.calendar.entries import (
    CalendarWriter,
    Resource,
    Tally,
    calendar_row,
    sync_window,
)

log = logging.getLogger(__name__)
MAX_WAIT = 60.0  # seconds of Retry-After waited within one sync
MAX_TRIES = 5
_STATUS = {
    "accepted": "ACCEPTED",
    "organizer": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyaccepted": "TENTATIVE",
    "none": "NEEDS-ACTION",
    "notresponded": "NEEDS-ACTION",
}
_ROLE = {
    "required": "REQ-PARTICIPANT",
    "optional": "OPT-PARTICIPANT",
    "resource": "NON-PARTICIPANT",
}

Refresh = Callable[[Tokens], Tokens]


def sync_graph(
    db: Database,
    config: Config,
    mailbox_id: int,
    base: str,
    tokens: Tokens,
    refresh: Refresh,
    *,
    sleep: Callable[[float], None] = time.sleep,
    fence: Fence | None = None,
) -> Tally:
    """Sync the mailbox's calendar view through Graph; what changed."""
    view = f"{base.rstrip('/')}/me/calendarView/delta"
    calendar_id = calendar_row(db, mailbox_id, CalendarKind.GRAPH, view, "Calendar")
    writer = CalendarWriter(db, config, calendar_id, CalendarKind.GRAPH.value, fence)
    with db.read() as session:
        delta = session.get_one(Calendar, calendar_id).sync_token
    graph = _Graph(config, base, tokens, refresh, sleep)
    with graph:
        first = not delta
        if delta:
            try:
                link = _follow(graph, writer, delta)
            except _Expired:
                first = True
        if first:
            start, end = sync_window(config)
            query = urlencode({"startDateTime": _iso(start), "endDateTime": _iso(end)})
            seen: set[str] = set()
            link = _follow(graph, writer, f"{view}?{query}", seen)
            writer.remove(href for href in writer.etags() if href not in seen)
    writer.finish(sync_token=link)
    return writer.tally


class _Expired(Exception):
    """Graph no longer knows the delta token (410): sync from the start."""


def _follow(graph: _Graph, writer: CalendarWriter, url: str, seen: set[str] | None = None) -> str:
    """Follow nextLinks from `url`, writing each page; the final deltaLink."""
    while True:
        page = graph.get(url)
        changed, removed = [], []
        for item in page.get("value", []):
            if not isinstance(item, dict) or not item.get("id"):
                continue
            if "@removed" in item:
                removed.append(str(item["id"]))
                continue
            resource = _resource(item)
            if seen is not None:
                seen.add(resource.href)
            changed.append(resource)
        writer.put(changed)
        writer.remove(removed)
        if page.get("@odata.nextLink"):
            url = str(page["@odata.nextLink"])
            continue
        if page.get("@odata.deltaLink"):
            return str(page["@odata.deltaLink"])
        raise MailboxError(PROTOCOL, "Graph answered a page with neither nextLink nor deltaLink")


class _Graph:
    """GETs to Graph with the mailbox's token: 401 refreshed once, 429/503 waited."""

    def __init__(
        self,
        config: Config,
        base: str,
        tokens: Tokens,
        refresh: Refresh,
        sleep: Callable[[float], None],
    ) -> None:
        origin = urlsplit(base)
        self.origin = (origin.scheme, origin.netloc)
        self.refresh = refresh
        self.tokens = refresh(tokens)  # the stored token is IMAP's: ask for Graph's
        self.sleep = sleep
        self.page_size = config.calendar.graph_page_size
        self.client = httpx.Client(timeout=config.calendar.timeout, follow_redirects=False)

    def __enter__(self) -> _Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self.origin:
            raise MailboxError(PROTOCOL, f"Graph sent a link off its origin: {url[:200]}")
        refreshed = False
        waited = 0.0
        for _ in range(MAX_TRIES):
            try:
                answer = self.client.get(url, headers=self._headers())
            except httpx.HTTPError as exc:
                raise MailboxError(UNREACHABLE, f"Graph: {exc}") from exc
            if answer.status_code == 401 and not refreshed:
                self.tokens = self.refresh(self.tokens)
                refreshed = True
                continue
            if answer.status_code == 401:
                raise MailboxError(AUTH, f"Graph refused the token: {_error(answer)}")
            if answer.status_code == 403:  # signed in, but the calendar is not granted
                raise MailboxError(
                    PROTOCOL,
                    f"Graph forbids reading the calendar (403: {_error(answer)}): sign in "
                    "with Microsoft again to allow calendar access",
                )
            if answer.status_code == 410:
                raise _Expired()
            if answer.status_code in (429, 503):
                wait = _retry_after(answer)
                if waited + wait > MAX_WAIT:
                    raise MailboxError(THROTTLED, f"Graph asks to wait {wait:.0f} s")
                log.info("graph: %s, waiting %.1f s", answer.status_code, wait)
                self.sleep(wait)
                waited += wait
                continue
            if answer.status_code != 200:
                raise MailboxError(
                    PROTOCOL, f"Graph answered {answer.status_code}: {_error(answer)}"
                )
            data = answer.json()
            if not isinstance(data, dict):
                raise MailboxError(PROTOCOL, "Graph answered something other than an object")
            return data
        raise MailboxError(THROTTLED, f"Graph kept refusing after {MAX_TRIES} tries")

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens.access_token}",
            "Prefer": f'outlook.timezone="UTC", odata.maxpagesize={self.page_size}',
            "Accept": "application/json",
        }


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(0.0, float(answer.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _error(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        return str(body.get("error", {}).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return answer.text[:300]


def _resource(item: dict[str, Any]) -> Resource:
    """A Graph event as an Invite (one per instance: calendarView expands series)."""
    organizer = _person(item.get("organizer"), "organizer", "CHAIR")
    attendees = tuple(
        p
        for p in (
            _person(a, str((a.get("status") or {}).get("response", "none")), a.get("type", ""))
            for a in item.get("attendees") or []
            if isinstance(a, dict)
        )
        if p is not None
    )
    location = item.get("location") or {}
    online = item.get("onlineMeeting") or {}
    invite = Invite(
        method="REQUEST",
        uid=str(item.get("iCalUId") or item["id"])[:500],
        recurrence_id=None,
        sequence=0,
        dtstamp=_when(item.get("lastModifiedDateTime")),
        summary=str(item.get("subject") or "")[:500],
        start=_when((item.get("start") or {}).get("dateTime")),
        end=_when((item.get("end") or {}).get("dateTime")),
        all_day=bool(item.get("isAllDay")),
        timezone=iana_zone(str(item.get("originalStartTimeZone") or "")),
        location=str(location.get("displayName") or "")[:500] if isinstance(location, dict) else "",
        conference_url=str(online.get("joinUrl") or "")[:500] if isinstance(online, dict) else "",
        organizer=organizer,
        attendees=attendees,
        cancelled=bool(item.get("isCancelled")),
        source="graph",
    )
    return Resource(str(item["id"]), str(item.get("changeKey") or ""), [invite])


def _person(value: Any, response: str, kind: str) -> Attendee | None:
    if not isinstance(value, dict):
        return None
    address = value.get("emailAddress") or {}
    email = str(address.get("address") or "").strip().lower()
    if "@" not in email:
        return None
    return Attendee(
        email=email[:320],
        name=str(address.get("name") or "")[:200],
        status=_STATUS.get(response.lower(), "NEEDS-ACTION"),
        role=_ROLE.get(str(kind).lower(), "CHAIR" if kind == "CHAIR" else "REQ-PARTICIPANT"),
        resource=str(kind).lower() == "resource",
    )


def _when(text: Any) -> datetime | None:
    """Graph's "2026-12-14T09:00:00.0000000" (UTC, as asked) or an ISO time with a zone."""
    if not isinstance(text, str) or not text:
        return None
    cleaned = text.rstrip("Z")
    if "." in cleaned:
        head, fraction = cleaned.split(".", 1)
        cleaned = f"{head}.{fraction[:6]}"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
