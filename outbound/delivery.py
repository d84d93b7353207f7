"""The `delivery` role: takes queued messages out, by the route their user chose.

    claim (queued/deferred and due -> sending, claimed_by this process, in one
        transaction for several)
    -> the copy for recipients (no Bcc), DKIM-signed with the account's key for the
       From domain (verified by dkimpy before it may leave)
    -> route: relay ([outbound] relay_url, TLS required, AUTH), mailbox (the user's
       own SMTP server) or direct (the MX hosts of each recipient domain,
       opportunistic STARTTLS, at most connections_per_domain at once)
    -> each recipient's reply recorded (group-committed with other messages'): 2xx
       sent, 5xx bounced (the remote reply kept), anything else deferred with
       exponential backoff until [outbound] max_age, then bounced.

Up to [outbound] concurrency messages are in flight in each process, and there may
be several processes ([outbound] processes) or hosts. A crash while sending leaves
the message `sending`; the process started in place of the dead one puts those it
had claimed back to `deferred`, and only their recipients not yet `sent` are tried
again (the remote's acceptance and our commit are a few milliseconds apart: RFC
1047's window, which no SMTP client can close). Events: message.sent,
message.bounced. A sent message is also handed to the pipeline (a sighting from the
outbound source), which attaches it to the recipients' contacts, and copied once to
the user's Sent folder when they have a connected mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.orm import Session

from gateway import oauth2
from gateway.addresses import domain_of, parse_one
from gateway.config import Config
from gateway.db import Database
from gateway.errors import InputError
from gateway.events import emit
from gateway.group_commit import GroupCommitter
from gateway.models import (
    DeliveryState,
    Keep,
    Mailbox,
    MailboxState,
    OutboundMessage,
    OutboundRecipient,
    RawMessage,
    Source,
    User,
    table_of,
    utcnow,
)
from gateway.netguard import check_host
from gateway.parsing import parse
from gateway.prepared import prepared
from gateway.resolver import DnsTempError, Resolver
from gateway.runner import first_of
from gateway.store import Arrival, accept_in
from gateway.vault import Vault
from outbound.dkim_keys import SigningKey, signing_keys
from outbound.dkim_sign import Signer, SigningError
from outbound.hygiene import transmitted
from outbound.smtp_client import (
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_OPPORTUNISTIC,
    TLS_REQUIRED,
    Result,
    Server,
    Sessions,
    transmit,
)

log = logging.getLogger(__name__)
MESSAGE_SENT = "message.sent"
MESSAGE_BOUNCED = "message.bounced"
ROUTES = ("mailbox", "direct", "relay")
PENDING = (DeliveryState.QUEUED.value, DeliveryState.DEFERRED.value)
KEYS_TTL = 10.0  # seconds the delivery role uses the DKIM keys it read
CLAIM_LEASE = 300.0  # seconds a claim lives unless its process renews it
RENEW_EVERY = 60.0  # seconds between a process's renewals of its claims
NO_MAILBOX = "no mailbox"  # the sent_copy outcome of a user without a connected mailbox


@dataclass(frozen=True)
class Job:
    id: int
    account_id: int
    user_id: int
    route: str
    mail_from: str
    raw: bytes
    recipients: list[str]  # not yet sent or bounced
    attempts: int
    age: float  # seconds since it was queued
    message_id: str = ""  # the Message-ID header's value
    copy: bool = False  # the user has a connected mailbox: a copy goes to their Sent


SentCopy = Callable[[int, bytes, str, bool], str]
"""(user id, stored bytes, Message-ID, sent through the user's mailbox) -> outcome: puts
the copy in the user's Sent folder (inbound.imap.sent_copy, wired by the runner)."""


class Delivery:
    """The work of the role, callable without it (tests, `gateway queue retry`)."""

    def __init__(
        self,
        db: Database,
        config: Config,
        sent_copy: SentCopy | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.sent_copy = sent_copy
        # "host/worker": unique among the processes sending from this database, and
        # the same for the process started in place of one that died.
        self.owner = owner or f"{socket.gethostname()}/serve"
        self.vault = Vault.load(config.secret_key_file)
        self.signer = Signer()
        self.resolver = Resolver(config.dns)
        # SMTP sessions kept open between messages: as many as may be sending at once
        self.sessions = Sessions(per_server=config.outbound.concurrency)
        # What the servers answered, committed for several messages at once.
        self.recorder: GroupCommitter[Connection] = GroupCommitter(
            db.connection, name="delivery-record"
        )
        self._decrypted: dict[str, str] = {}  # encrypted private key -> its PEM
        self._signing: dict[tuple[int, str], tuple[float, list[SigningKey]]] = {}
        self._domains: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(config.outbound.connections_per_domain)
        )

    def renew(self, ids: set[int]) -> None:
        """The claims of the messages this process is sending are still alive (their
        time is moved on: see expire())."""
        if not ids:
            return
        with self.db.session() as session:
            session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id.in_(ids),
                    OutboundMessage.state == DeliveryState.SENDING.value,
                    OutboundMessage.claimed_by == self.owner,
                )
                .values(updated_at=utcnow())
            )

    def expire(self) -> int:
        """Messages `sending` whose claim was not renewed for CLAIM_LEASE seconds (their
        process, or host, died and was not started again) go back to the queue."""
        stale = utcnow() - timedelta(seconds=CLAIM_LEASE)
        with self.db.session() as session:
            result = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.state == DeliveryState.SENDING.value,
                    OutboundMessage.updated_at < stale,
                )
                .values(state=DeliveryState.DEFERRED.value, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def recover(self, only: set[int] | None = None) -> int:
        """Messages this process's predecessor left `sending` (a crash) go back to the
        queue, their recipients already sent staying sent; those another process is
        sending are not touched. `only`: just these (whose outcome this process could
        not record)."""
        query = update(OutboundMessage).where(
            OutboundMessage.state == DeliveryState.SENDING.value,
            (OutboundMessage.claimed_by == self.owner) | OutboundMessage.claimed_by.is_(None),
        )
        if only is not None:
            query = query.where(OutboundMessage.id.in_(only))
        with self.db.session() as session:
            result = session.execute(
                query.values(state=DeliveryState.DEFERRED.value, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def close(self) -> None:
        self.sessions.close()
        self.recorder.close()

    def claim(self, limit: int) -> list[Job]:
        """Up to `limit` messages that are due, now `sending` (one transaction, a few
        statements for all of them: the queue's hot path)."""
        now = utcnow()
        with self.db.connection() as connection:
            rows = connection.execute(_DUE, {"b_now": now, "b_limit": limit}).all()
            if not rows:
                return []
            recipients: dict[int, list[str]] = defaultdict(list)
            ids = [r.id for r in rows]
            for message_id, address in connection.execute(_PENDING_RECIPIENTS, {"b_ids": ids}):
                recipients[message_id].append(address)
            sending, copying = _mailbox_users(connection, {r.user_id for r in rows})
            jobs = []
            by_route: dict[str, list[int]] = defaultdict(list)
            for row in rows:
                route = row.route or (
                    "mailbox" if row.user_id in sending else self.config.outbound.default_route
                )
                by_route[route].append(row.id)
                jobs.append(
                    Job(
                        row.id,
                        row.account_id,
                        row.user_id,
                        route,
                        row.mail_from,
                        row.data,
                        recipients[row.id],
                        row.attempts,
                        (now - row.created_at).total_seconds(),
                        row.message_id_header,
                        row.user_id in copying,
                    )
                )
            for route, claimed in by_route.items():
                values = {"b_ids": claimed, "b_route": route, "b_now": now, "b_owner": self.owner}
                connection.execute(_MARK_SENDING, values)
        return jobs

    def attempt(self, job: Job, copy: bool = True) -> dict[str, Result]:
        """Send `job` once and record what each recipient's server said; then, with
        `copy`, put its copy in the user's Sent folder (the role does that apart)."""
        try:
            data = self._signed(job)
            results = self._send(job, data)
        except SigningError as exc:
            log.error("delivery: message %s not sent: %s", job.id, exc)
            results = dict.fromkeys(job.recipients, Result(451, f"4.7.0 not signed: {exc}"))
        except InputError as exc:  # a route that cannot be used as configured
            results = dict.fromkeys(job.recipients, Result(451, f"4.3.5 {exc}"))
        state = self.recorder.call(lambda c: self.record_in(c, job, results))
        if copy and state == DeliveryState.SENT.value and job.copy and self.sent_copy:
            self.copy_to_sent(job.id)  # its copy in the user's Sent folder, once
        return results

    def copy_to_sent(self, message_id: int) -> str | None:
        """Put the sent message's copy in Sent unless that was done, given up on, or is
        being done by another process; returns the outcome recorded, or None when there
        was nothing to do. The copy is taken first ("copying N", a lease of COPY_LEASE
        seconds, compare-and-set), so that two processes never both make it."""
        assert self.sent_copy is not None
        now = utcnow()
        with self.db.read() as session:
            message = session.get_one(OutboundMessage, message_id)
            previous, stamp = message.sent_copy, message.updated_at
            if message.state != DeliveryState.SENT.value or not _copy_due(previous):
                return None
            if (previous or "").startswith(COPYING) and (now - stamp).total_seconds() < COPY_LEASE:
                return None  # another process is making it
            tries = _copy_tries(previous)
            user_id, route = message.user_id, message.route
            header_id = message.message_id_header
            raw = session.get_one(RawMessage, message.raw_message_id).data
        if not self._take_copy(message_id, previous, stamp, tries):
            return None  # another process took it first
        try:
            outcome = self.sent_copy(user_id, raw, header_id, route == "mailbox")
        except Exception as exc:  # the mail went out; only its copy is missing
            log.warning("delivery: no copy of message %s in Sent yet: %s", message_id, exc)
            tries += 1
            word = "gave up" if tries >= COPY_TRIES else f"error {tries}"
            outcome = f"{word}: {type(exc).__name__}: {exc}"
        with self.db.session() as session:
            message = session.get_one(OutboundMessage, message_id)
            message.sent_copy = outcome[:200]
            message.updated_at = utcnow()
        return outcome

    def _take_copy(
        self, message_id: int, previous: str | None, stamp: datetime, tries: int
    ) -> bool:
        """Compare-and-set: the copy is ours if its outcome and time are still what we
        read (`previous`, `stamp`); now "copying N" with the time of taking."""
        om = table_of(OutboundMessage)
        same = om.c.sent_copy.is_(None) if previous is None else om.c.sent_copy == previous
        with self.db.connection() as connection:
            taken = connection.execute(
                update(om)
                .where(om.c.id == message_id, same, om.c.updated_at == stamp)
                .values(sent_copy=f"{COPYING} {tries}", updated_at=utcnow())
            ).rowcount
        return bool(taken)

    def copies_due(self, limit: int) -> list[int]:
        """Sent messages whose copy in Sent is missing: never tried (a stop between the
        delivery and the copy), failed and due again (retry_base, doubling), or taken
        by a process that stopped before it was done (COPY_LEASE ago)."""
        now = utcnow()
        with self.db.read() as session:
            rows = session.execute(
                select(OutboundMessage.id, OutboundMessage.sent_copy, OutboundMessage.updated_at)
                .where(
                    OutboundMessage.state == DeliveryState.SENT.value,
                    (OutboundMessage.sent_copy.is_(None))
                    | (OutboundMessage.sent_copy.like("error %"))
                    | (OutboundMessage.sent_copy.like(f"{COPYING} %")),
                )
                .order_by(OutboundMessage.updated_at)
                .limit(limit * 4)
            ).all()
        due = []
        for message_id, outcome, updated in rows:
            if outcome is None:
                wait = 0.0
            elif outcome.startswith(COPYING):
                wait = COPY_LEASE
            else:
                wait = min(
                    self.config.outbound.retry_base * 2 ** (_copy_tries(outcome) - 1),
                    self.config.outbound.retry_max,
                )
            if (now - updated).total_seconds() >= wait:
                due.append(int(message_id))
        return due[:limit]

    def _signed(self, job: Job) -> bytes:
        copy = transmitted(job.raw)
        senders = parse(copy).from_
        if not senders:
            return copy
        return self.signer.sign(copy, self._keys(job.account_id, domain_of(senders[0].normalized)))

    def _keys(self, account_id: int, domain: str) -> list[SigningKey]:
        """The account's signing keys for `domain`, read again after KEYS_TTL seconds
        (a key generated, rotated or removed signs, or stops signing, within that)."""
        now = time.monotonic()
        cached = self._signing.get((account_id, domain))
        if cached is not None and now - cached[0] < KEYS_TTL:
            return cached[1]
        with self.db.read() as session:
            keys = signing_keys(session, self._decrypt, account_id, domain)
        self._signing[(account_id, domain)] = (now, keys)
        return keys

    def _decrypt(self, encrypted: str) -> str:
        pem = self._decrypted.get(encrypted)
        if pem is None:
            pem = self._decrypted[encrypted] = self.vault.decrypt(encrypted)
        return pem

    def _send(self, job: Job, data: bytes) -> dict[str, Result]:
        timeout = self.config.outbound.timeout
        helo = self.config.outbound.helo_name
        if job.route == "relay":
            return transmit(
                self._relay(), helo, job.mail_from, job.recipients, data, timeout, self.sessions
            )
        if job.route == "mailbox":
            server = self._mailbox(job.user_id)
            return transmit(
                server, helo, job.mail_from, job.recipients, data, timeout, self.sessions
            )
        results: dict[str, Result] = {}
        by_domain: dict[str, list[str]] = defaultdict(list)
        for recipient in job.recipients:
            address = parse_one(recipient)
            if address is None:
                results[recipient] = Result(553, "5.1.3 bad recipient address")
                continue
            by_domain[domain_of(address.normalized)].append(recipient)
        for domain, recipients in by_domain.items():
            with self._domains[domain]:
                results.update(self._direct(domain, recipients, job.mail_from, data))
        return results

    def _direct(
        self, domain: str, recipients: list[str], mail_from: str, data: bytes
    ) -> dict[str, Result]:
        outbound = self.config.outbound
        try:
            hosts = self._mx_hosts(domain)
        except DnsTempError as exc:
            return dict.fromkeys(recipients, Result(451, f"4.4.3 DNS: {exc}"))
        if hosts is None:  # RFC 7505 null MX: the domain takes no mail
            return dict.fromkeys(recipients, Result(556, "5.1.10 the domain accepts no mail"))
        if not hosts:
            return dict.fromkeys(recipients, Result(550, "5.1.2 the domain has no mail server"))
        results: dict[str, Result] = {}
        for host in hosts:
            try:
                address = check_host(
                    host,
                    outbound.direct_port,
                    self.config.security.allowed_private_networks,
                    what="MX host",
                    resolver=self.resolver,
                )
            except InputError as exc:
                results = dict.fromkeys(recipients, Result(451, f"4.4.4 {exc}"))
                continue
            server = Server(host, address, outbound.direct_port, TLS_OPPORTUNISTIC)
            results = transmit(
                server,
                outbound.helo_name,
                mail_from,
                recipients,
                data,
                outbound.timeout,
                self.sessions,
            )
            if not all(r.temporary and r.code == 451 for r in results.values()):
                return results  # this MX answered: its word stands
        return results

    def _mx_hosts(self, domain: str) -> list[str] | None:
        records = self.resolver.lookup(domain, "MX")
        if not records:
            return [domain]  # RFC 5321 5.1: the implicit MX
        ordered = sorted(records, key=lambda r: r.preference)  # type: ignore[attr-defined]
        names = [str(r.exchange).rstrip(".") for r in ordered]  # type: ignore[attr-defined]
        if names == [""]:
            return None
        return [n for n in names if n]

    def _relay(self) -> Server:
        url = urlsplit(self.config.outbound.relay_url)
        if not url.hostname:
            raise InputError("[outbound] relay_url", "the relay route needs relay_url")
        implicit = url.scheme == "smtps"
        port = url.port or (465 if implicit else 587)
        address = check_host(
            url.hostname,
            port,
            self.config.security.allowed_private_networks,
            what="relay host",
            resolver=self.resolver if self.config.dns.nameservers else None,
        )
        login = None
        if url.username:
            login = (unquote(url.username), unquote(url.password or ""))
        return Server(
            url.hostname,
            address,
            port,
            TLS_IMPLICIT if implicit else TLS_REQUIRED,
            self.config.outbound.relay_tls_verify,
            login,
        )

    def _mailbox(self, user_id: int) -> Server:
        """The SMTP server of the user's connected mailbox, signed in as them (password,
        or an XOAUTH2 access token refreshed when it has expired)."""
        with self.db.read() as session:
            mailbox = _sending_mailbox(session, user_id)
            if mailbox is None or mailbox.credentials is None:
                raise InputError("mailbox route", "the user has no connected mailbox to send with")
            host, port, security = mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security
            username, auth, verify = mailbox.username, mailbox.auth, mailbox.tls_verify
            provider, mailbox_id = mailbox.provider, mailbox.id
            secret = self.vault.decrypt(mailbox.credentials)
        allowed = self.config.security.allowed_private_networks
        address = check_host(
            host,
            port,
            allowed,
            what="SMTP host",
            resolver=self.resolver if self.config.dns.nameservers else None,
        )
        if security == "none" and not _in_networks(address, allowed):
            raise InputError("mailbox route", f"SMTP without TLS to {host} is not allowed")
        tls = {"tls": TLS_IMPLICIT, "starttls": TLS_REQUIRED}.get(security, TLS_NONE)
        verify = verify and self.config.imap.tls_verify
        if auth != "oauth2":
            return Server(host, address, port, tls, verify, login=(username, secret))
        tokens = oauth2.Tokens.from_json(secret)
        if tokens.expired():
            try:
                tokens = oauth2.refresh(self.config, provider, tokens)
            except oauth2.TokenError as exc:
                raise InputError(
                    "mailbox route", f"the access token was not refreshed: {exc}"
                ) from exc
            with self.db.session() as session:
                session.get_one(Mailbox, mailbox_id).credentials = self.vault.encrypt(
                    tokens.to_json()
                )
        return Server(host, address, port, tls, verify, xoauth2=(username, tokens.access_token))

    def record_in(self, connection: Connection, job: Job, results: dict[str, Result]) -> str:
        """What each recipient's server said, in the caller's transaction (the delivery
        role group-commits these); returns the message's new state."""
        outbound = self.config.outbound
        now = utcnow()
        expired = job.age > outbound.max_age
        bounced: list[tuple[str, str]] = []  # (address, reply) of this attempt
        changes: list[dict[str, Any]] = []
        final: list[tuple[str, str]] = []  # (address, state) of every recipient
        for recipient_id, address, state, attempts in _RECIPIENTS(connection).execute(
            connection, {"b_message": job.id}
        ):
            result = results.get(address)
            if result is None or state not in PENDING:
                final.append((address, state))
                continue
            reply = str(result)[:2000]
            if 200 <= result.code < 300:
                state = DeliveryState.SENT.value
            elif result.permanent or expired:
                state = DeliveryState.BOUNCED.value
                if expired and not result.permanent:
                    reply = f"gave up after {job.age / 86400:.1f} days; last reply: {result}"[:2000]
                bounced.append((address, reply))
            else:
                state = DeliveryState.DEFERRED.value
            final.append((address, state))
            changes.append(
                {
                    "b_id": recipient_id,
                    "state": state,
                    "attempts": attempts + 1,
                    "last_reply": reply,
                    "updated_at": now,
                }
            )
        if changes:
            _RECIPIENT_RESULT(connection).execute_many(connection, changes)
        for address, reply in bounced:
            emit(
                connection,
                job.account_id,
                MESSAGE_BOUNCED,
                id=job.id,
                message_id=job.message_id,
                recipient=address,
                reply=reply,
            )
        states = [state for _, state in final]
        attempts = job.attempts + 1
        next_attempt, sent_copy = now, None
        if DeliveryState.DEFERRED.value in states or DeliveryState.QUEUED.value in states:
            message_state = DeliveryState.DEFERRED.value
            wait = min(outbound.retry_max, outbound.retry_base * 2 ** (attempts - 1))
            next_attempt = now + timedelta(seconds=wait * random.uniform(0.9, 1.1))
        elif DeliveryState.SENT.value in states:
            message_state = DeliveryState.SENT.value
            sent_copy = None if job.copy else NO_MAILBOX
            # The sent message joins the user's mail like any other: the pipeline
            # attaches it to the recipients' contacts (and auto-creates new To,
            # Cc and Bcc recipients where the account allows), and the copy the
            # IMAP sync later finds in Sent is the same message, another sighting.
            accept_in(
                connection,
                job.raw,
                Arrival(
                    job.user_id,
                    Source.OUTBOUND,
                    Keep.ALWAYS,
                    source_key=f"outbound:{job.id}",
                    account_id=job.account_id,
                ),
            )
            emit(
                connection,
                job.account_id,
                MESSAGE_SENT,
                id=job.id,
                message_id=job.message_id,
                sent=[a for a, state in final if state == DeliveryState.SENT.value],
                bounced=[a for a, state in final if state == DeliveryState.BOUNCED.value],
            )
        elif DeliveryState.CANCELLED.value in states and DeliveryState.BOUNCED.value not in states:
            message_state = DeliveryState.CANCELLED.value
        else:
            message_state = DeliveryState.BOUNCED.value
        _MESSAGE_RESULT(connection).execute(
            connection,
            {
                "b_id": job.id,
                "state": message_state,
                "attempts": attempts,
                "next_attempt_at": next_attempt,
                "sent_copy": sent_copy,
                "updated_at": now,
            },
        )
        return message_state


_om, _rc = table_of(OutboundMessage), table_of(OutboundRecipient)
_RECIPIENTS = prepared(
    "outbound_recipients_of",
    lambda: (
        select(_rc.c.id, _rc.c.address, _rc.c.state, _rc.c.attempts)
        .where(_rc.c.message_id == bindparam("b_message"))
        .order_by(_rc.c.id)
    ),
)
_RECIPIENT_RESULT = prepared(
    "outbound_recipient_result",
    lambda: update(_rc).where(_rc.c.id == bindparam("b_id")),
    ("state", "attempts", "last_reply", "updated_at"),
)
_MESSAGE_RESULT = prepared(
    "outbound_message_result",
    lambda: update(_om).where(_om.c.id == bindparam("b_id")),
    ("state", "attempts", "next_attempt_at", "sent_copy", "updated_at"),
)


# The claim's statements, built once (building a statement costs more than running it).
_users, _raws = table_of(User), table_of(RawMessage)
_DUE = (
    select(
        _om.c.id,
        _om.c.account_id,
        _om.c.user_id,
        _om.c.mail_from,
        _om.c.attempts,
        _om.c.created_at,
        _om.c.message_id_header,
        _users.c.route,
        _raws.c.data,
    )
    .join(_users, _users.c.id == _om.c.user_id)
    .join(_raws, _raws.c.id == _om.c.raw_message_id)
    .where(_om.c.state.in_(PENDING), _om.c.next_attempt_at <= bindparam("b_now"))
    .order_by(_om.c.next_attempt_at, _om.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(of=_om, skip_locked=True)
)
_PENDING_RECIPIENTS = (
    select(_rc.c.message_id, _rc.c.address)
    .where(_rc.c.message_id.in_(bindparam("b_ids", expanding=True)), _rc.c.state.in_(PENDING))
    .order_by(_rc.c.id)
)
_MARK_SENDING = (
    update(_om)
    .where(_om.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(
        state=DeliveryState.SENDING.value,
        route=bindparam("b_route"),
        updated_at=bindparam("b_now"),
        claimed_by=bindparam("b_owner"),
    )
)
# A connected mailbox that can send: an SMTP server to sign in to (one definition,
# for the claim's batch and for one user's route).
_CAN_SEND = and_(Mailbox.smtp_host != "", Mailbox.smtp_port > 0)
_MAILBOXES = select(Mailbox.user_id, _CAN_SEND).where(
    Mailbox.user_id.in_(bindparam("b_users", expanding=True)),
    Mailbox.state == MailboxState.ACTIVE.value,
)


def _mailbox_users(connection: Connection, users: set[int]) -> tuple[set[int], set[int]]:
    """Of `users`: (those with a connected mailbox that can send, those with any
    connected mailbox, whose Sent folder gets a copy)."""
    sending: set[int] = set()
    copying: set[int] = set()
    for user_id, can_send in connection.execute(_MAILBOXES, {"b_users": list(users)}):
        copying.add(user_id)
        if can_send:
            sending.add(user_id)
    return sending, copying


class DeliveryRole:
    """Keeps up to [outbound] concurrency messages in flight, each in a thread of its
    own (sign, send, record): new ones are claimed as others finish, so a slow server
    holds up only its own message."""

    def __init__(
        self,
        db: Database,
        config: Config,
        sent_copy: SentCopy | None = None,
        owner: str | None = None,
    ) -> None:
        self.delivery = Delivery(db, config, sent_copy, owner)
        self.config = config
        self.stranded: set[int] = set()  # messages whose outcome could not be recorded
        self.sending: set[int] = set()  # messages in flight here
        self._renewed = 0.0  # never: the first look at the queue renews and expires
        self.wake_event = asyncio.Event()
        self.pool = ThreadPoolExecutor(config.outbound.concurrency, "delivery")
        # Copies to Sent are made apart from the sending slots: one may wait
        # GRACE seconds for a server that saves its own, which must not hold up mail.
        self.copy_event = asyncio.Event()
        self.copy_pool = ThreadPoolExecutor(COPY_CONCURRENCY, "sent-copy")
        self._loop_of: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """A message was queued (called from the event loop's thread)."""
        self.wake_event.set()

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.delivery.recover)
        if recovered:
            log.info("delivery: %s message(s) cut short by a stop go back to the queue", recovered)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop_of = asyncio.get_running_loop()
        try:
            if self.delivery.sent_copy is not None:
                await asyncio.gather(self._loop(stop), self._copy_loop(stop))
            else:
                await self._loop(stop)
        finally:
            await asyncio.to_thread(self.delivery.close)
            self.pool.shutdown(wait=False)
            self.copy_pool.shutdown(wait=False)

    async def _loop(self, stop: asyncio.Event) -> None:
        outbound = self.config.outbound
        loop = asyncio.get_running_loop()
        flying: set[asyncio.Future[None]] = set()
        refill = max(1, outbound.concurrency // 2)
        try:
            while not stop.is_set():
                self.wake_event.clear()
                jobs: list[Job] = []
                free = outbound.concurrency - len(flying)
                if free > 0:
                    try:
                        jobs = await asyncio.to_thread(self.delivery.claim, free)
                    except Exception:
                        log.exception("delivery: cannot read the queue; retrying")
                for job in jobs:
                    self.sending.add(job.id)
                    flying.add(loop.run_in_executor(self.pool, self._attempt, job))
                if time.monotonic() - self._renewed >= RENEW_EVERY:
                    await asyncio.to_thread(self._lease)
                if jobs and len(jobs) == free:
                    # Every slot taken and more may be waiting: claim again once half
                    # of them are free (a claim is a transaction: one for several).
                    while len(flying) > outbound.concurrency - refill and not stop.is_set():
                        await _first_of(stop, flying)
                        flying = {f for f in flying if not f.done()}
                    continue
                if self.stranded:
                    await asyncio.to_thread(self._give_back)
                # The queue is empty for now: a new message, a free slot or the poll.
                await _first_of(stop, flying, self.wake_event, outbound.poll_interval)
                flying = {f for f in flying if not f.done()}
        finally:
            if flying:
                await asyncio.gather(*flying, return_exceptions=True)

    def _give_back(self) -> None:
        stranded = set(self.stranded)
        try:
            given = self.delivery.recover(stranded)
        except Exception:
            log.warning("delivery: the database is still away; %s message(s) wait", len(stranded))
            return
        self.stranded -= stranded
        log.info(
            "delivery: %s message(s) whose outcome was not recorded go back to the queue", given
        )

    async def _copy_loop(self, stop: asyncio.Event) -> None:
        """Copies in Sent still missing: of messages just sent (woken), and those of a
        stop right after sending or a mailbox that was away (every poll)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.copy_event.clear()
            try:
                due = await asyncio.to_thread(self.delivery.copies_due, COPY_CONCURRENCY)
            except Exception:
                log.exception("delivery: copies to Sent not found; trying again later")
                due = []
            if due:
                await asyncio.gather(
                    *(loop.run_in_executor(self.copy_pool, self._copy, i) for i in due)
                )
                continue
            await first_of(stop, self.copy_event, self.config.outbound.poll_interval)

    def _copy(self, message_id: int) -> None:
        try:
            self.delivery.copy_to_sent(message_id)
        except Exception:
            log.exception("delivery: copy of message %s to Sent failed", message_id)

    def _lease(self) -> None:
        """Renew this process's claims; take back those of processes gone for good."""
        self._renewed = time.monotonic()
        try:
            self.delivery.renew(set(self.sending))
            expired = self.delivery.expire()
        except Exception:
            log.warning("delivery: claims not renewed (the database is away)")
            return
        if expired:
            log.warning(
                "delivery: %s message(s) of a process that is gone go back to the queue", expired
            )

    def _attempt(self, job: Job) -> None:
        try:
            self._attempt_once(job)
        finally:
            self.sending.discard(job.id)

    def _attempt_once(self, job: Job) -> None:
        try:
            results = self.delivery.attempt(job, copy=False)
        except Exception:
            # Its outcome could not be recorded (the database away): it is given back
            # to the queue once the database answers again, not left `sending`.
            log.exception("delivery: message %s failed to send; it goes back to the queue", job.id)
            self.stranded.add(job.id)
            return
        summary = ", ".join(f"{r}: {res.code}" for r, res in results.items())
        log.info("delivery: message %s via %s: %s", job.id, job.route, summary)
        if job.copy and self.delivery.sent_copy is not None and self._loop_of is not None:
            self._loop_of.call_soon_threadsafe(self.copy_event.set)  # its copy to Sent


async def _first_of(
    stop: asyncio.Event,
    flying: set[asyncio.Future[None]],
    wake: asyncio.Event | None = None,
    timeout: float | None = None,
) -> None:
    """Until `stop` or `wake` is set, one of `flying` is done, or `timeout` passes."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(
            [*waiters, *flying], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


COPY_TRIES = 8  # tries of a copy to Sent before it is given up
COPY_CONCURRENCY = 4  # copies to Sent made at once by a delivery process
COPYING = "copying"  # "copying N": taken by a process, after N failed tries
COPY_LEASE = 600.0  # seconds after which a copy taken but never finished is due again


def _copy_due(outcome: str | None) -> bool:
    return outcome is None or outcome.startswith(("error ", f"{COPYING} "))


def _copy_tries(outcome: str | None) -> int:
    if outcome is None:
        return 0
    for word in ("error ", f"{COPYING} "):
        if outcome.startswith(word):
            count = outcome[len(word) :].split(":", 1)[0]
            return int(count) if count.isdigit() else 1
    return 0


def set_route(db: Database, config: Config, email: str, route: str) -> None:
    from gateway.accounts import get_user

    if route not in ROUTES:
        raise InputError("ROUTE", f"must be one of {', '.join(ROUTES)}")
    if route == "relay" and not config.outbound.relay_url:
        raise InputError("ROUTE", "relay needs [outbound] relay_url")
    with db.session() as session:
        user = get_user(session, config, email)
        if route == "mailbox" and _sending_mailbox(session, user.id) is None:
            raise InputError("ROUTE", f"{email} has no connected mailbox with an SMTP server")
        user.route = route


def _sending_mailbox(session: Session, user_id: int) -> Mailbox | None:
    """The user's connected mailbox that can send (an SMTP server, signed in)."""
    return session.scalars(
        select(Mailbox)
        .where(
            Mailbox.user_id == user_id,
            _CAN_SEND,
            Mailbox.state == MailboxState.ACTIVE.value,
        )
        .order_by(Mailbox.id)
    ).first()


def _in_networks(address: str, networks: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
