"""CalDAV sync of one mailbox's calendars, with the caldav library.

First sync of a calendar: its sync-token is taken (a sync-collection REPORT that
lists hrefs and ETags only), then the window ([calendar] days_back to days_ahead)
is read page by page ([calendar] page_days of it per calendar-query REPORT), so
memory holds one page of events at a time. After that, each sync asks only what
changed since the token (RFC 6578): changed resources are fetched with
calendar-multiget, deleted ones removed. A server without sync-tokens is followed
by its ctag: when it moved, the ETags of every resource are listed (PROPFIND) and
only the changed ones fetched. A token the server no longer knows (403
valid-sync-token) means a first sync again.

Refused credentials (401, 403) raise MailboxError("auth"): the mailbox goes to
reconnect_required, as when IMAP refuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.elements.base import ValuedBaseElement
from caldav.lib import error as caldav_error
from requests.auth import HTTPBasicAuth

from gateway.calendar_invites import Invite, parse
from gateway.config import Config
from gateway.db import Database
from gateway.imap.connection import AUTH, PROTOCOL, UNREACHABLE, MailboxError
from gateway.leases import Fence
from gateway.models import Calendar, CalendarKind
from inbound.calendar.entries import (
    CalendarWriter,
    Resource,
    Tally,
    calendar_row,
    sync_window,
)

log = logging.getLogger(__name__)
MULTIGET = 100  # hrefs per calendar-multiget


class GetCTag(ValuedBaseElement):
    """The calendarserver.org ctag: changes whenever anything in the calendar does."""

    tag = "{http://calendarserver.org/ns/}getctag"


@dataclass(frozen=True)
class Access:
    url: str
    username: str
    password: str = ""
    bearer: str = ""  # an OAuth2 access token (Google)
    verify: bool = True


def client_of(access: Access, config: Config) -> Any:
    """A CalDAV client that signs in on its first request (Basic, or the OAuth2 bearer
    token): waiting for a 401 first costs a round trip, and a server's delay after a
    refused sign-in on every sync."""
    headers = {"Authorization": f"Bearer {access.bearer}"} if access.bearer else {}
    return DAVClient(
        url=access.url,
        auth=None if access.bearer else HTTPBasicAuth(access.username, access.password),
        headers=headers,
        timeout=int(config.calendar.timeout),
        ssl_verify_cert=access.verify,
    )


def sync_caldav(
    db: Database,
    config: Config,
    mailbox_id: int,
    access: Access,
    *,
    use_sync_token: bool = True,
    fence: Fence | None = None,
) -> Tally:
    """Sync every calendar of the mailbox's CalDAV account; what changed, summed."""
    total = Tally()
    try:
        with client_of(access, config) as client:
            for remote in client.principal().calendars():
                row_id = calendar_row(
                    db, mailbox_id, CalendarKind.CALDAV, str(remote.url), _name(remote)
                )
                tally = _sync_one(db, config, row_id, remote, use_sync_token, fence)
                total.changed += tally.changed
                total.removed += tally.removed
                total.meetings += tally.meetings
    except caldav_error.AuthorizationError as exc:
        if "forbidden" in str(exc.reason).lower():  # 403: signed in, calendars not open
            raise MailboxError(
                PROTOCOL,
                f"the CalDAV server forbids reading the calendars ({exc.reason}): allow "
                "calendar access for this account (for Google, sign in again)",
            ) from exc
        raise MailboxError(AUTH, f"the CalDAV server refused the sign-in: {exc}") from exc
    except caldav_error.DAVError as exc:
        raise MailboxError(PROTOCOL, f"CalDAV: {exc}") from exc
    except OSError as exc:
        raise MailboxError(UNREACHABLE, f"CalDAV server {access.url}: {exc}") from exc
    return total


def _sync_one(
    db: Database,
    config: Config,
    calendar_id: int,
    remote: Any,
    use_sync_token: bool,
    fence: Fence | None,
) -> Tally:
    writer = CalendarWriter(db, config, calendar_id, CalendarKind.CALDAV.value, fence)
    with db.read() as session:
        row = session.get_one(Calendar, calendar_id)
        token, ctag = row.sync_token, row.ctag
    start, end = sync_window(config)
    if use_sync_token and token:
        try:
            result = _changes(remote, token)
        except (caldav_error.AuthorizationError, caldav_error.ReportError) as exc:
            if "sync-token" not in str(exc).lower() and "sync_token" not in str(exc).lower():
                raise
            result = None  # the server forgot the token: a first sync again
        if result is not None:
            known = writer.etags()
            listed = {_href(o.url): _etag(o) for o in result}
            changed = {h: e for h, e in listed.items() if e and known.get(h) != e}
            writer.put(_fetched(remote, changed, start, end, known))
            writer.remove(h for h, e in listed.items() if not e)  # 404: deleted
            writer.finish(sync_token=str(result.sync_token))
            return writer.tally
    if not use_sync_token and ctag:
        now = _ctag(remote)
        if now and now == ctag:
            writer.finish()
            return writer.tally
        etags = _listed_etags(remote)
        known = writer.etags()
        changed = {href: etag for href, etag in etags.items() if known.get(href) != etag}
        writer.put(_fetched(remote, changed, start, end, known))
        writer.remove(href for href in known if href not in etags)
        writer.finish(ctag=now)
        return writer.tally
    # A first sync (or again): the token first, then the window page by page.
    token = ""
    if use_sync_token:
        try:
            token = str(_changes(remote, None).sync_token or "")
        except caldav_error.AuthorizationError:
            raise
        except caldav_error.DAVError:
            token = ""  # no sync-collection here: the ctag and ETags are followed
    ctag_now = _ctag(remote) if not token else ""
    seen: set[str] = set()
    for page_start, page_end in pages(start, end, config.calendar.page_days):
        found = remote.search(
            start=page_start, end=page_end, event=True, expand=False, props=[dav.GetEtag()]
        )
        resources = []
        for obj in found:
            href = _href(obj.url)
            if href in seen:
                continue  # a series that spans pages comes back on each
            seen.add(href)
            resources.append(_resource(href, _etag(obj), obj.data))
        writer.put(resources)
    writer.remove(href for href in writer.etags() if href not in seen)
    writer.finish(sync_token=token, ctag=ctag_now, window=(start, end))
    return writer.tally


def pages(start: datetime, end: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
    step = timedelta(days=max(1, days))
    at = start
    while at < end:
        yield at, min(at + step, end)
        at += step


def in_window(invites: Sequence[Invite], start: datetime, end: datetime) -> bool:
    """Whether an event belongs to the window (a series always does: it repeats)."""
    for invite in invites:
        if invite.rrule or invite.start is None:
            return True
        finish = invite.end or invite.start
        if invite.start < end and finish >= start:
            return True
    return False


def _fetched(
    remote: Any, etags: dict[str, str], start: datetime, end: datetime, known: dict[str, str]
) -> Iterator[Resource]:
    """The changed resources (href -> their listed ETag), fetched MULTIGET at a time;
    outside the window only those already synced (an event moved out is followed)."""
    hrefs = list(etags)
    for at in range(0, len(hrefs), MULTIGET):
        urls = [remote.url.join(href) for href in hrefs[at : at + MULTIGET]]
        for obj in remote.multiget(urls):
            href = _href(obj.url)
            resource = _resource(href, etags.get(href, ""), obj.data)
            if href in known or in_window(resource.invites, start, end):
                yield resource


def _changes(remote: Any, token: str | None) -> Any:
    """sync-collection: every href with its ETag since `token` (all of them for None);
    a deleted one comes without an ETag (its status is 404)."""
    return remote.objects_by_sync_token(token, load_objects=False)


def _resource(href: str, etag: str, data: Any) -> Resource:
    text = data if isinstance(data, str) else (data or b"").decode("utf-8", "replace")
    try:
        invites = parse(text.encode("utf-8"), "", href)
    except Exception as exc:  # one unreadable event: skipped, the rest synced
        log.info("calendar resource %s not read: %s", href, exc)
        invites = []
    return Resource(href, etag, invites)


def _href(url: Any) -> str:
    """One spelling of a resource's URL: servers and the library differ on which
    characters they percent-encode (a UID's "@" as "%40" or not)."""
    return unquote(str(url))


def _etag(obj: Any) -> str:
    props = getattr(obj, "props", None) or {}
    return str(props.get(dav.GetEtag.tag, "") or "")


def _ctag(remote: Any) -> str:
    try:
        return str(remote.get_property(GetCTag()) or "")
    except caldav_error.DAVError:
        return ""


def _listed_etags(remote: Any) -> dict[str, str]:
    """href -> ETag of every resource in the calendar (PROPFIND, depth 1)."""
    response = remote._query_properties([dav.GetEtag()], depth=1)
    found = response.expand_simple_props([dav.GetEtag()])
    own = str(remote.url.path if hasattr(remote.url, "path") else remote.url)
    out = {}
    for href, props in found.items():
        etag = props.get(dav.GetEtag.tag)
        url = _href(remote.url.join(href))
        if etag and not url.rstrip("/").endswith(own.rstrip("/")):
            out[url] = str(etag)
    return out


def _name(remote: Any) -> str:
    try:
        return str(remote.get_display_name() or "")[:200]
    except Exception:
        return ""
