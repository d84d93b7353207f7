"""Delivering one queued message: the work of the delivery role, callable without
it (tests, `gateway queue retry`).

    claim (outbound.claims: queued/deferred and due -> sending, claimed_by this
        process, in one transaction for several)
    -> the copy for recipients (no Bcc), DKIM-signed with the account's key for the
       From domain (verified by dkimpy before it may leave)
    -> its route (outbound.routes: relay, the user's mailbox, or direct to MX)
    -> each recipient's reply recorded (outbound.results, group-committed with other
       messages'): sent, bounced or deferred with backoff
    -> once sent: its copy in the user's Sent folder (outbound.sent_copy), once.

A crash while sending leaves the message `sending`; the process started in place of
the dead one puts those it had claimed back to `deferred`, and only their recipients
not yet `sent` are tried again (the remote's acceptance and our commit are a few
milliseconds apart: RFC 1047's window, which no SMTP client can close).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from sqlalchemy import Connection

from gateway.addresses import domain_of
from gateway.config import Config
from gateway.db import Database
from gateway.errors import InputError
from gateway.group_commit import GroupCommitter
from gateway.models import DeliveryState
from gateway.parsing import parse
from gateway.vault import Vault
from outbound.claims import Claims, Job
from outbound.dkim_keys import SigningKey, signing_keys
from outbound.dkim_sign import Signer, SigningError
from outbound.hygiene import transmitted
from outbound.results import LOST, record_in
from outbound.routes import Routes
from outbound.sent_copy import SentCopies
from outbound.smtp_client import Result

log = logging.getLogger(__name__)
KEYS_TTL = 10.0  # seconds the delivery role uses the DKIM keys it read

SentCopy = Callable[[int, bytes, str, bool], str]
"""(user id, stored bytes, Message-ID, sent through the user's mailbox) -> outcome: puts
the copy in the user's Sent folder (outbound.sent_copy.save_to_sent, bound to the
database, config and vault by the role's factory)."""


class Delivery:
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
        self.owner = owner or f"{socket.gethostname()}/serve"
        self.claims = Claims(db, self.owner, config.outbound.default_route, config.cluster.lease)
        # Message id -> when its claim was made or last renewed (monotonic time).
        self.claimed_at: dict[int, float] = {}
        self.vault = Vault.load(config.secret_key_file)
        self.signer = Signer()
        self.routes = Routes(db, config, self.vault)
        self.copies = SentCopies(db, config, sent_copy) if sent_copy is not None else None
        # What the servers answered, committed for several messages at once.
        self.recorder: GroupCommitter[Connection] = GroupCommitter(
            db.connection, name="delivery-record"
        )
        self._decrypted: dict[str, str] = {}  # encrypted private key -> its PEM
        self._signing: dict[tuple[int, str], tuple[float, list[SigningKey]]] = {}

    def claim(self, limit: int) -> list[Job]:
        began = time.monotonic()
        jobs = self.claims.claim(limit)
        for job in jobs:
            self.claimed_at[job.id] = began
        return jobs

    def renew(self, ids: set[int]) -> None:
        """Renew the claims of `ids`; one that is no longer this process's (taken back
        by another node) is not sent from here (holds)."""
        began = time.monotonic()
        for message_id in self.claims.renew(ids):
            if message_id in self.claimed_at:
                self.claimed_at[message_id] = began

    def holds(self, message_id: int) -> bool:
        """Whether the claim of `message_id` is still this process's: claimed or renewed
        within the lease. Past it (the process was frozen, or the database away)
        another node may have taken it over: it is not sent from here."""
        since = self.claimed_at.get(message_id)
        return since is not None and time.monotonic() - since < self.claims.lease

    def expire(self) -> int:
        return self.claims.expire()

    def recover(self, only: set[int] | None = None) -> int:
        return self.claims.recover(only)

    def close(self) -> None:
        self.routes.close()
        self.recorder.close()

    def attempt(self, job: Job, copy: bool = True) -> dict[str, Result]:
        """Send `job` once and record what each recipient's server said; then, with
        `copy`, put its copy in the user's Sent folder (the role does that apart).
        Nothing is sent when the claim may be another node's by now (holds)."""
        try:
            return self._attempt(job, copy)
        finally:
            self.claimed_at.pop(job.id, None)

    def _attempt(self, job: Job, copy: bool) -> dict[str, Result]:
        if not self.holds(job.id):
            log.warning("delivery: message %s not sent: its claim was not renewed in time", job.id)
            return {}
        try:
            results = self.routes.send(job, self._signed(job))
        except SigningError as exc:
            log.error("delivery: message %s not sent: %s", job.id, exc)
            results = dict.fromkeys(job.recipients, Result(451, f"4.7.0 not signed: {exc}"))
        except InputError as exc:  # a route that cannot be used as configured
            results = dict.fromkeys(job.recipients, Result(451, f"4.3.5 {exc}"))
        state = self.recorder.call(lambda c: self.record_in(c, job, results))
        if state == LOST:
            log.warning(
                "delivery: message %s: its claim ran out while it was sent; another node "
                "has it now, and this try is not recorded",
                job.id,
            )
        if copy and state == DeliveryState.SENT.value and job.copy and self.copies:
            self.copies.copy_to_sent(job.id)  # its copy in the user's Sent folder, once
        return results

    def record_in(self, connection: Connection, job: Job, results: dict[str, Result]) -> str:
        return record_in(self.config, connection, job, results, self.owner)

    def copy_to_sent(self, message_id: int) -> str | None:
        assert self.copies is not None
        return self.copies.copy_to_sent(message_id)

    def copies_due(self, limit: int) -> list[int]:
        assert self.copies is not None
        return self.copies.copies_due(limit)

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
