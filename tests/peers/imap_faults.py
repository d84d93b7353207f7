"""FaultyImap: an in-process IMAP server (twisted.mail) whose faults a test switches on.

Plain IMAP4rev1 with LOGIN (and AUTHENTICATE XOAUTH2), no IDLE and no
special-use flags: Sent is found by its name ("Sent Items"). Faults:
  drop_fetch_after  abort the connection in the middle of the Nth body FETCH
                    response (part of the literal already sent)
  delay             seconds before each command is answered
  huge_literal      answer a body FETCH with a literal of that many bytes, then stall
  uidvalidity       changed by set_uidvalidity() (UIDs renumbered)
  password          changed by set_password()
The server records every command it received (`commands`).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol
from twisted.mail import imap4
from zope.interface import implementer  # type: ignore[import-untyped]

from tests.peers.reactor import call, reactor

_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@implementer(imap4.IMessage, imap4.IMessageFile)
class _Message:
    def __init__(self, raw: bytes, uid: int, date: str) -> None:
        self.raw, self.uid, self.date = raw, uid, date
        # Gmail's message id: the same for the same message under every label.
        self.gm_msgid = int(hashlib.sha256(raw).hexdigest()[:15], 16)
        self.flags: list[str] = []

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.raw)

    def getHeaders(self, negate: bool, *names: bytes | str) -> dict[str, str]:
        wanted = {(n.decode() if isinstance(n, bytes) else n).lower() for n in names}
        out = {}
        for name, value in _HEADERS.parsebytes(self.raw).items():
            if not wanted or ((name.lower() in wanted) != negate):
                out[name] = value
        return out

    def getBodyFile(self) -> io.BytesIO:
        _head, _, body = self.raw.partition(b"\r\n\r\n")
        return io.BytesIO(body)

    def getSize(self) -> int:
        return len(self.raw)

    def isMultipart(self) -> bool:
        return False

    def getSubPart(self, part: int) -> Any:
        raise IndexError(part)

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return self.flags

    def getInternalDate(self) -> str:
        return self.date


@implementer(imap4.IMailboxInfo, imap4.IMailbox)
class _Mailbox:
    def __init__(self, attributes: tuple[str, ...] = ()) -> None:
        self.attributes = list(attributes)  # LIST attributes (special-use) if any
        self.messages: list[_Message] = []
        self.uidvalidity = 1000
        self.next_uid = 1
        self.listeners: list[Any] = []

    def getFlags(self) -> list[str]:
        return []  # LIST shows no special-use flags (and SELECT no FLAGS)

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return self.uidvalidity

    def getUIDNext(self) -> int:
        return self.next_uid

    def getUID(self, message: int) -> int:
        return self.messages[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.messages)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return len(self.messages)

    def isWriteable(self) -> bool:
        return False

    def destroy(self) -> None:
        pass

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        return imap4.statusRequestHelper(self, names)  # type: ignore[no-any-return]

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        self.listeners.remove(listener)

    def addMessage(self, message: Any, flags: Any = (), date: Any = None) -> Any:
        raise imap4.ReadOnlyMailbox()

    def expunge(self) -> list[int]:
        return []

    def fetch(self, messages: Any, uid: bool) -> Iterable[tuple[int, _Message]]:
        if uid:
            messages.last = self.next_uid - 1 if self.messages else 0
            wanted = set(messages)
            return [(i, m) for i, m in enumerate(self.messages, 1) if m.uid in wanted]
        messages.last = len(self.messages)
        return [(i, self.messages[i - 1]) for i in messages if 0 < i <= len(self.messages)]

    def store(self, *args: Any, **kwargs: Any) -> Any:
        raise imap4.ReadOnlyMailbox()


class _Account(imap4.MemoryAccount):
    def _emptyMailbox(self, name: str, id: int) -> _Mailbox:
        attributes = {
            "[GMAIL]/SENT MAIL": ("\\Sent",),
            "[GMAIL]/ALL MAIL": ("\\All",),
            "[GMAIL]/SPAM": ("\\Junk",),
        }
        return _Mailbox(attributes.get(name.upper(), ()))


@dataclass
class Faults:
    drop_fetch_after: int | None = None  # drop during the Nth body FETCH from now
    delay: float = 0.0
    huge_literal: int | None = None
    body_fetches: int = 0
    refuse_logins: int = 0  # answer that many LOGINs with NO `refusal`
    refusal: str = "[ALERT] Too many simultaneous connections. (Failure)"


@implementer(checkers.ICredentialsChecker)
class _Checker:
    credentialInterfaces = (credentials.IUsernamePassword, credentials.IUsernameHashedPassword)

    def __init__(self, server: FaultyImap) -> None:
        self.server = server

    def requestAvatarId(self, creds: Any) -> Any:
        user = creds.username.decode() if isinstance(creds.username, bytes) else creds.username
        if isinstance(creds, _Bearer):
            ok = creds.token == self.server.tokens.get(user)
        else:
            ok = self.server.passwords.get(user) is not None and creds.checkPassword(
                self.server.passwords[user].encode()
            )
        if ok:
            return defer.succeed(user.encode())
        return defer.fail(error.UnauthorizedLogin())


@implementer(credentials.IUsernamePassword)
class _Bearer:
    """XOAUTH2 credentials: user and bearer token."""

    def __init__(self) -> None:
        self.username: bytes = b""
        self.token = ""

    def getChallenge(self) -> bytes:
        return b""

    def setResponse(self, response: bytes) -> None:
        fields = dict(part.split("=", 1) for part in response.decode().split("\x01") if "=" in part)
        self.username = fields.get("user", "").encode()
        self.token = fields.get("auth", "").removeprefix("Bearer ")

    def moreChallenges(self) -> bool:
        return False

    def checkPassword(self, password: bytes) -> bool:
        return False


class _GmailFetchParser(imap4._FetchParser):
    class XGmMsgid:
        type = "x_gm_msgid"

        def __bytes__(self) -> bytes:
            return b"X-GM-MSGID"

    _simple_fetch_att = [(b"x-gm-msgid", XGmMsgid), *imap4._FetchParser._simple_fetch_att]


class _Server(imap4.IMAP4Server):
    faulty: FaultyImap

    def arg_fetchatt(self, line: bytes) -> tuple[list[Any], bytes]:
        if not self.faulty.gmail:
            result: tuple[list[Any], bytes] = super().arg_fetchatt(line)
            return result
        parser = _GmailFetchParser()
        parser.parseString(line)
        return parser.result, b""

    # twisted looks commands up as (handler, argument parsers...) tuples of functions
    select_FETCH = (  # type: ignore[assignment]
        imap4.IMAP4Server.do_FETCH,
        imap4.IMAP4Server.arg_seqset,
        arg_fetchatt,
    )

    def spew_x_gm_msgid(self, id: int, msg: Any, _w: Any = None, _f: Any = None) -> None:
        _w(b"X-GM-MSGID %d" % msg.gm_msgid)

    def capabilities(self) -> dict[bytes, Any]:
        offered: dict[bytes, Any] = super().capabilities()
        offered.pop(b"IDLE", None)  # a server without IDLE: clients must poll
        if self.faulty.gmail:
            offered[b"X-GM-EXT-1"] = None
        return offered

    def connectionMade(self) -> None:
        self.faulty.connections.append(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        if self in self.faulty.connections:
            self.faulty.connections.remove(self)
        super().connectionLost(reason)

    def lineReceived(self, line: bytes) -> None:
        self.faulty.commands.append(line.decode("utf-8", "replace"))
        faults = self.faulty.faults
        transport: Any = self.transport
        parts = line.split(b" ", 2)
        if len(parts) > 1 and parts[1].upper() == b"LOGIN" and faults.refuse_logins > 0:
            faults.refuse_logins -= 1
            transport.write(parts[0] + b" NO " + faults.refusal.encode() + b"\r\n")
            return
        if b"BODY.PEEK[]" in line.upper() or b"BODY[]" in line.upper():
            faults.body_fetches += 1
            if faults.huge_literal is not None:
                tag = line.split(b" ", 1)[0]
                transport.write(
                    b"* 1 FETCH (UID 1 BODY[] {%d}\r\nFrom: x\r\n" % faults.huge_literal
                )
                del tag
                return  # and say nothing more
            if faults.drop_fetch_after is not None:
                faults.drop_fetch_after -= 1
                if faults.drop_fetch_after <= 0:
                    faults.drop_fetch_after = None
                    transport.write(b"* 1 FETCH (UID 1 BODY[] {5000}\r\nFrom: half a mess")
                    transport.abortConnection()
                    return
        if faults.delay:
            reactor.callLater(faults.delay, super().lineReceived, line)
            return
        super().lineReceived(line)


class _Factory(protocol.ServerFactory):
    def __init__(self, server: FaultyImap) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> _Server:
        proto = _Server(chal={b"XOAUTH2": _Bearer})
        proto.faulty = self.server
        proto.portal = self.server.portal  # type: ignore[assignment]
        proto.factory = self
        return proto


@implementer(portal.IRealm)
class _Realm:
    def __init__(self, server: FaultyImap) -> None:
        self.server = server

    def requestAvatar(self, avatar_id: bytes, mind: Any, *interfaces: Any) -> Any:
        account = self.server.accounts[avatar_id.decode()]
        return imap4.IAccount, account, lambda: None


@dataclass
class FaultyImap:
    faults: Faults = field(default_factory=Faults)
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    connections: list[Any] = field(default_factory=list)
    port: int = 0
    gmail: bool = False  # X-GM-EXT-1, labels as folders, special-use on LIST

    def __post_init__(self) -> None:
        self.portal = portal.Portal(_Realm(self), [_Checker(self)])  # type: ignore[arg-type,list-item]
        self._listener = call(reactor.listenTCP, 0, _Factory(self), interface="127.0.0.1")
        self.port = self._listener.getHost().port
        self._dates = itertools.count()

    def stop(self) -> None:
        call(self._listener.stopListening)

    def add_user(self, user: str, password: str = "", token: str = "") -> None:
        def create() -> None:
            account = _Account(user)
            account.addMailbox("INBOX")
            folders = ("[Gmail]/Sent Mail", "[Gmail]/All Mail", "[Gmail]/Spam")
            for name in folders if self.gmail else ("Sent Items", "Junk"):
                account.addMailbox(name)
            self.accounts[user] = account

        call(create)
        if password:
            self.passwords[user] = password
        if token:
            self.tokens[user] = token

    def set_password(self, user: str, password: str) -> None:
        self.passwords[user] = password

    def kick(self) -> None:
        """Drop every open session (as a server does after a password change)."""

        def drop() -> None:
            for connection in list(self.connections):
                connection.transport.abortConnection()

        call(drop)

    def box(self, user: str, folder: str) -> _Mailbox:
        mailbox: _Mailbox = self.accounts[user].mailboxes[folder.upper()]
        return mailbox

    def append(self, user: str, folder: str, *messages: bytes) -> None:
        def add() -> None:
            box = self.box(user, folder)
            for raw in messages:
                date = "Mon, 23 Nov 2026 10:00:00 +0000"
                box.messages.append(_Message(raw, box.next_uid, date))
                box.next_uid += 1

        call(add)

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        """A new UIDVALIDITY, and every message renumbered (as after a server rebuild)."""

        def renumber() -> None:
            box = self.box(user, folder)
            box.uidvalidity = value
            for i, message in enumerate(box.messages, 1):
                message.uid = 100 + i
            box.next_uid = 101 + len(box.messages)

        call(renumber)


def xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()
