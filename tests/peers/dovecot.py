"""A throwaway Dovecot (Debian's dovecot-imapd) on a loopback port, for IMAP sync tests.

Each Dovecot gets its own directory (mode 0755: its auth process runs as the
dovecot user), a passwd-file of users with plain passwords, Maildirs owned by
the static userdb uid (nobody), special-use folders Sent, Junk, Trash and
Archive, and a raw log of every IMAP session (to count what a client fetched).
Tests fill mailboxes with APPEND over IMAP, as a mail client would.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
default_process_limit = 1000
default_client_limit = 4000
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
mail_uid = nobody
mail_gid = nogroup
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{root}/mail/%u/Maildir
imap_capability = +IDLE
mailbox_idle_check_interval = 1 secs
mail_plugins =
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service imap {{
  executable = imap postlogin
}}
{compress}
service postlogin {{
  executable = script-login -d rawlog -b
  unix_listener postlogin {{
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
}}
"""


def available() -> bool:
    return os.access(DOVECOT, os.X_OK)


COMPRESS = """\
protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    def __init__(self, tls: tuple[Path, Path] | None = None, compress: bool = False) -> None:
        """`tls`: (certificate chain, key) PEM files for an implicit-TLS port (tls_port);
        `compress`: offer COMPRESS=DEFLATE (Dovecot's imap_zlib plugin)."""
        self.tls = tls
        self.compress = compress
        # Not under pytest's tmp_path: every parent must be traversable by the
        # dovecot user (pytest's are mode 0700).
        self.root = Path(tempfile.mkdtemp(prefix="gateway-dovecot-"))
        self.port = _free_port()
        self.tls_port = _free_port() if tls else 0
        self.users: dict[str, str] = {}
        self._stamp = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> Dovecot:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        self._write_passwd()
        ssl = "ssl = no"
        if self.tls is not None:
            for path in self.tls:
                shutil.copy(path, self.root / path.name)
                os.chmod(self.root / path.name, 0o644)
            cert, key = (self.root / p.name for p in self.tls)
            ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        self.conf.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                tls_port=self.tls_port,
                ssl=ssl,
                compress=COMPRESS if self.compress else "",
            )
        )
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                log = (self.root / "dovecot.log").read_text() if self.log_exists else ""
                raise RuntimeError(f"dovecot did not start: {err}\n{log}")
            time.sleep(0.05)

    @property
    def log_exists(self) -> bool:
        return (self.root / "dovecot.log").exists()

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
        self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    # -- users and mail -------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        home = self.root / "mail" / user
        (home / "dovecot.rawlog").mkdir(parents=True, exist_ok=True)  # rawlog writes here
        for path in (home, home / "dovecot.rawlog"):
            shutil.chown(path, "nobody", "nogroup")
        self._write_passwd()
        self._until_signed_in(user, password)

    def _until_signed_in(self, user: str, password: str) -> None:
        """Dovecot looks at its passwd-file at most once a second: wait for it to
        take the change (a sign-in with the new password works)."""
        deadline = time.monotonic() + 5
        while True:
            try:
                with IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=5) as client:
                    client.login(user, password)
                    return
            except LoginError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def set_password(self, user: str, password: str) -> None:
        self.add_user(user, password)

    def _write_passwd(self) -> None:
        """One passwd-file per user: Dovecot reads a new user's file at once (it looks
        at a file it knows at most once a second)."""
        folder = self.root / "passwd.d"
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o755)
        for user, password in self.users.items():
            path = folder / user
            text = f"{user}:{{PLAIN}}{password}::::::\n"
            if not path.exists() or path.read_text() != text:
                changed = path.exists()
                path.write_text(text)
                os.chmod(path, 0o644)
                if changed:  # a new mtime second, or Dovecot keeps the old password
                    self._stamp = max(self._stamp + 1, int(time.time()) + 1)
                    os.utime(path, (self._stamp, self._stamp))

    def doveadm(self, *args: str) -> str:
        if self._proc is None:
            return ""
        result = subprocess.run(
            [DOVEADM, "-c", str(self.conf), *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def append(
        self, user: str, folder: str, messages: Iterable[bytes], flags: Iterable[str] = ()
    ) -> None:
        with self.client(user) as client:
            for raw in messages:
                client.append(folder, raw, flags=tuple(flags))
            client.logout()

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """New mail for `user` as the MTA's delivery agent brings it: saved straight
        into the folder (doveadm save), with no IMAP session of its own."""
        if self._proc is None:
            raise RuntimeError("dovecot is not running")
        subprocess.run(
            [DOVEADM, "-c", str(self.conf), "save", "-u", user, "-m", folder],
            input=raw,
            capture_output=True,
            check=True,
        )

    def kick(self, user: str) -> None:
        """Drop every IMAP session of `user` (a server-side disconnect)."""
        self.doveadm("kick", user)

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)

    def rawlog(self, user: str) -> str:
        """Everything clients sent for `user` so far (every session's .in log), once it
        has settled: the rawlog process writes a session's log a moment after the
        client is done, later still on a busy machine."""
        folder = self.root / "mail" / user / "dovecot.rawlog"

        def read() -> str:
            return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.in")))

        text, deadline = read(), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.1)
            again = read()
            if again == text:
                break
            text = again
        return text

    def fetch_commands(self, user: str) -> list[str]:
        """The UID FETCH commands clients sent for `user`."""
        return [
            line
            for line in self.rawlog(user).splitlines()
            if re.search(r"\bUID FETCH\b", line, re.I)
        ]


@dataclass
class ImapUser:
    server: Dovecot
    name: str
    password: str

    def append(self, folder: str, *messages: bytes, flags: tuple[str, ...] = ()) -> None:
        self.server.append(self.name, folder, messages, flags)

    def body_fetches(self) -> list[int]:
        """UIDs of every full-message FETCH clients sent for this user so far."""
        uids: list[int] = []
        for line in self.server.fetch_commands(self.name):
            if "BODY.PEEK[]" in line.upper():
                uids += _uid_set(line.split()[3])
        return uids

    def header_fetches(self) -> list[int]:
        uids: list[int] = []
        for line in self.server.fetch_commands(self.name):
            if "HEADER.FIELDS" in line.upper():
                uids += _uid_set(line.split()[3])
        return uids


def _uid_set(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        out += list(range(int(low), int(high) + 1)) if high else [int(low)]
    return out
