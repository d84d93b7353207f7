"""A Radicale CalDAV server on loopback for the calendar sync tests and the bench: a
users file (htpasswd, plain), filesystem storage, owner-only rights. Calendars and
events are made over CalDAV with the caldav library, or many at once by writing
the storage folder before the server reads it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from caldav.davclient import DAVClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Radicale:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.forbid_all = False  # rights that let every user sign in and read nothing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def set_password(self, user: str, password: str) -> None:
        """Add a user or change a password (Radicale reads the file on each request)."""
        self.users[user] = password
        lines = "".join(f"{u}:{p}\n" for u, p in self.users.items())
        (self.root / "users").write_text(lines, encoding="utf-8")

    def start(self) -> None:
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        if not self.users:
            self.set_password("bob", "secret")
        config = self.root / "config"
        config.write_text(
            f"""[server]
hosts = 127.0.0.1:{self.port}
[auth]
type = htpasswd
htpasswd_filename = {self.root / "users"}
htpasswd_encryption = plain
[storage]
filesystem_folder = {self.root / "storage"}
{self._rights()}
[logging]
level = warning
""",
            encoding="utf-8",
        )
        with (self.root / "radicale.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Radicale did not start: " + (self.root / "radicale.log").read_text())

    def _rights(self) -> str:
        if not self.forbid_all:
            return "[rights]\ntype = owner_only"
        (self.root / "rights").write_text("", encoding="utf-8")
        return f"[rights]\ntype = from_file\nfile = {self.root / 'rights'}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self, user: str = "bob") -> Any:
        return DAVClient(self.url, username=user, password=self.users[user])

    def calendar(self, user: str = "bob", name: str = "work") -> Any:
        """The user's calendar `name`, made when missing."""
        principal = self.client(user).principal()
        for calendar in principal.calendars():
            if str(calendar.url).rstrip("/").endswith(f"/{name}"):
                return calendar
        return principal.make_calendar(name=name.title(), cal_id=name)

    def write_events(self, user: str, name: str, events: Iterable[tuple[str, str]]) -> int:
        """Many events at once, written to storage as Radicale keeps them (uid, ics);
        call before the server first reads the calendar."""
        folder = self.root / "storage" / "collection-root" / user / name
        folder.mkdir(parents=True, exist_ok=True)
        props = folder / ".Radicale.props"
        if not props.exists():
            props.write_text(
                '{"C:supported-calendar-component-set": "VEVENT", "D:displayname": "'
                + name.title()
                + '", "tag": "VCALENDAR"}',
                encoding="utf-8",
            )
        count = 0
        for uid, ics in events:
            (folder / f"{uid}.ics").write_text(ics, encoding="utf-8")
            count += 1
        return count


def event(
    uid: str,
    start: str,
    end: str,
    summary: str = "Meeting",
    *,
    organizer: str = "carol@client.com",
    attendees: Iterable[tuple[str, str]] = (("bob@acme.com", "ACCEPTED"),),
    sequence: int = 0,
    extra: str = "",
) -> str:
    people = "".join(
        f"ATTENDEE;PARTSTAT={status}:mailto:{email}\r\n" for email, status in attendees
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        f"SUMMARY:{summary}\r\nSEQUENCE:{sequence}\r\nORGANIZER:mailto:{organizer}\r\n"
        f"{people}{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
