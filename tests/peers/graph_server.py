"""A local Microsoft Graph for the calendar sync tests: /v1.0/me/calendarView/delta as
Graph documents it (learn.microsoft.com, "event: delta"): the first call with
startDateTime and endDateTime, pages of at most `Prefer: odata.maxpagesize` events
linked by @odata.nextLink ($skiptoken), an @odata.deltaLink ($deltatoken) on the
last page, and later calls with the deltaLink answering only what changed since,
deleted events as {"id": ..., "@removed": {"reason": "deleted"}}.

Faults: `throttle` answers the next N requests 429 with Retry-After; a bearer token
not in `tokens` gets 401 (revoke it to make the client refresh); an unknown
$deltatoken gets 410 (syncStateNotFound).
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.peers.http_thread import HttpThread, send_json


@dataclass
class GraphServer:
    user: str = "bob@contoso.example"
    tokens: dict[str, str] = field(default_factory=dict)  # user -> the valid access token
    throttle: int = 0  # answer this many next requests 429
    retry_after: str = "2"
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._version = 0
        self._changed: dict[str, int] = {}  # id -> version of its last change
        self._removed: dict[str, int] = {}  # id -> version it was removed at
        self._lock = threading.Lock()
        self._pages: dict[int, tuple[list[Any], int]] = {}  # a listing's items, its version
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = graph.answer(self.path, dict(self.headers))
                send_json(self, status, body, headers)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = HttpThread(Handler)

    @property
    def base(self) -> str:
        return f"{self._http.origin}/v1.0"

    def stop(self) -> None:
        self._http.stop()

    # -- the calendar --------------------------------------------------------------------

    def put(self, event_id: str, **fields: Any) -> None:
        """Add or change an event (Graph's JSON shape: subject, start, end, ...)."""
        with self._lock:
            self._version += 1
            event = {"id": event_id, "iCalUId": f"uid-{event_id}", **fields}
            event["changeKey"] = f"ck-{self._version}"
            event.setdefault("lastModifiedDateTime", f"2026-12-05T10:{self._version:02d}:00Z")
            self.events[event_id] = event
            self._changed[event_id] = self._version
            self._removed.pop(event_id, None)

    def delete(self, event_id: str) -> None:
        with self._lock:
            self._version += 1
            self.events.pop(event_id)
            self._changed.pop(event_id, None)
            self._removed[event_id] = self._version

    # -- the protocol --------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        self.requests.append(path)
        if self.throttle > 0:
            self.throttle -= 1
            return 429, {"Retry-After": self.retry_after}, _error("TooManyRequests")
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if not token or token != self.tokens.get(self.user):
            return 401, {}, _error("InvalidAuthenticationToken")
        parts = urllib.parse.urlsplit(path)
        if parts.path != "/v1.0/me/calendarView/delta":
            return 404, {}, _error("ResourceNotFound")
        query = dict(urllib.parse.parse_qsl(parts.query))
        size = _page_size(headers.get("Prefer", ""))
        with self._lock:
            if "$deltatoken" in query:
                since = int(query["$deltatoken"]) if query["$deltatoken"].isdigit() else -1
                if since < 0 or since > self._version:
                    return 410, {}, _error("SyncStateNotFound")
                items = [dict(self.events[i]) for i, v in self._changed.items() if v > since]
                items += [
                    {"id": i, "@removed": {"reason": "deleted"}}
                    for i, v in self._removed.items()
                    if v > since
                ]
                return 200, {}, self._page(items, 0, size, self._version)
            if "$skiptoken" in query:
                listing, offset = (int(x) for x in query["$skiptoken"].split("-"))
                items, version = self._pages[listing]
                return 200, {}, self._page(items, offset, size, version, listing)
            if "startDateTime" not in query or "endDateTime" not in query:
                return 400, {}, _error("ErrorInvalidParameter")
            start, end = query["startDateTime"], query["endDateTime"]
            start, end = start.rstrip("Z"), end.rstrip("Z")
            items = [
                dict(e)
                for e in self.events.values()
                if e["start"]["dateTime"] < end and e["end"]["dateTime"] >= start
            ]
            return 200, {}, self._page(items, 0, size, self._version)

    def _page(
        self, items: list[Any], offset: int, size: int, version: int, listing: int = 0
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "value": items[offset : offset + size],
        }
        link = f"{self.base}/me/calendarView/delta?"
        if offset + size < len(items):
            if not listing:
                listing = len(self._pages) + 1
                self._pages[listing] = (items, version)
            body["@odata.nextLink"] = link + f"$skiptoken={listing}-{offset + size}"
        else:
            body["@odata.deltaLink"] = link + f"$deltatoken={version}"
        return body


def _page_size(prefer: str) -> int:
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name == "odata.maxpagesize" and value.isdigit():
            return int(value)
    return 10


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code}}


def graph_event(
    subject: str,
    start: str,
    end: str,
    *,
    attendees: tuple[tuple[str, str, str], ...] = (),
    cancelled: bool = False,
) -> dict[str, Any]:
    """An event's fields as Graph gives them with Prefer: outlook.timezone="UTC"."""
    return {
        "subject": subject,
        "start": {"dateTime": f"{start}.0000000", "timeZone": "UTC"},
        "end": {"dateTime": f"{end}.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time",
        "isAllDay": False,
        "isCancelled": cancelled,
        "type": "singleInstance",
        "location": {"displayName": "Teams"},
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3a1"},
        "organizer": {"emailAddress": {"name": "Carol", "address": "carol@client.com"}},
        "attendees": [
            {
                "type": kind,
                "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": "", "address": email},
            }
            for email, response, kind in attendees
        ],
    }
