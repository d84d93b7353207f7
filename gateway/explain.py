"""Why is this mail (not) on this contact? Answered from what the gateway recorded.

For a Message-ID (and optionally a contact), every trace of the message is found
and each one says what was decided and why:

    attached         stored, and on these contacts by these addresses in these headers
    not_on_contact   stored, but the contact's addresses are in none of its headers
    duplicate        another message uses the same Message-ID: both are kept
    pending          stored, the pipeline has yet to finish it
    failed           stored, the pipeline failed on it (the error is kept)
    quarantined      held for approval: its sender did not verify (SPF, DKIM, DMARC)
    refused          refused by the dropbox: its sender did not verify
    not_a_contact    scanned in a synced folder, not fetched: no address of its
                     headers belonged to a contact then
    backfill_pending scanned, and a contact created since names it: the next sync
                     pass fetches it
    never_seen       no trace: not through the dropbox, not in a synced folder's
                     window ([imap] window_days), not sent through the gateway

A member sees only the traces of their own mail (`user_id`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.addresses import parse_one
from gateway.config import Config
from gateway.models import (
    Contact,
    ContactEmail,
    DropboxRefusal,
    Mailbox,
    MailboxFolder,
    Message,
    MessageAddress,
    MessageContact,
    RawMessage,
    ScannedAddress,
    ScannedMessage,
    Sighting,
    SightingState,
)
from gateway.parsing import parse


@dataclass
class Finding:
    decision: str
    reason: str  # a sentence a person can act on
    where: str = ""  # dropbox, "imap INBOX of bob@acme.com, UID 42", outbound
    when: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Explanation:
    message_id: str
    contact: str | None
    answer: str  # the first finding's reason, or why there is none
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for item in found["findings"]:
            item["when"] = item["when"].isoformat() if item["when"] else None
        return found


def explain(
    session: Session,
    config: Config,
    account_id: int,
    message_id: str,
    contact: str | None = None,
    user_id: int | None = None,
) -> Explanation:
    mid = message_id.strip().strip("<>").strip()
    contact_keys = _contact_keys(session, config, account_id, contact)
    findings: list[Finding] = []
    findings += _stored(session, account_id, mid, contact, contact_keys, user_id)
    findings += _unfinished(session, account_id, mid, user_id)
    findings += _refused(session, account_id, mid, user_id)
    findings += _scanned(session, account_id, mid, user_id)
    if not findings:
        findings.append(_never_seen(session, config, account_id, user_id))
    return Explanation(mid, contact, findings[0].reason, findings)


def _contact_keys(
    session: Session, config: Config, account_id: int, contact: str | None
) -> set[str]:
    """The addresses of the contact that has `contact` (or just that address)."""
    if contact is None:
        return set()
    address = parse_one(contact, config.addresses.local_part_case)
    if address is None:
        return set()
    owner = select(ContactEmail.contact_id).where(
        ContactEmail.account_id == account_id, ContactEmail.address == address.normalized
    )
    found = set(
        session.scalars(select(ContactEmail.address).where(ContactEmail.contact_id.in_(owner)))
    )
    return found or {address.normalized}


def _stored(
    session: Session,
    account_id: int,
    mid: str,
    contact: str | None,
    contact_keys: set[str],
    user_id: int | None,
) -> list[Finding]:
    query = select(Message).where(
        Message.account_id == account_id, Message.message_id_header == mid
    )
    if user_id is not None:
        query = query.where(
            Message.id.in_(select(Sighting.message_id).where(Sighting.user_id == user_id))
        )
    findings = []
    messages = list(session.scalars(query.order_by(Message.id)))
    for message in messages:
        where = ", ".join(_sources(session, message.id, user_id)) or "stored"
        links = session.execute(
            select(Contact.id, Contact.name, MessageContact.role, ContactEmail.address)
            .join(MessageContact, MessageContact.contact_id == Contact.id)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(MessageContact.message_id == message.id)
        ).all()
        named = {
            (row.address, row.role)
            for row in session.execute(
                select(MessageAddress.address, MessageAddress.role).where(
                    MessageAddress.message_id == message.id
                )
            )
        }
        matched = sorted(
            {
                (link.id, link.address, link.role)
                for link in links
                if (link.address, link.role) in named
            }
        )
        details = {
            "message": message.id,
            "subject": message.subject,
            "contacts": [{"contact": c, "address": a, "header": r} for c, a, r in matched],
        }
        if contact is not None and not contact_keys & {a for _, a, _ in matched}:
            in_headers = sorted(contact_keys & {a for a, _ in named})
            reason = (
                f"message {message.id} ({where}) names {contact} in its headers but is not "
                "on that contact: it is not a contact of this account"
                if in_headers
                else f"message {message.id} ({where}) is stored, but {contact} is in none of "
                "its headers (From, Sender, Reply-To, To, Cc, Bcc), so it is not on that contact"
            )
            findings.append(Finding("not_on_contact", reason, where, message.created_at, details))
        elif matched:
            said = ", ".join(f"{a} in {r}" for _, a, r in matched)
            findings.append(
                Finding(
                    "attached",
                    f"message {message.id} ({where}) is on its contacts by {said}",
                    where,
                    message.created_at,
                    details,
                )
            )
        else:
            findings.append(
                Finding(
                    "not_a_contact",
                    f"message {message.id} ({where}) is stored but on no contact: no address "
                    "of its headers belongs to a contact",
                    where,
                    message.created_at,
                    details,
                )
            )
        if "message_id_reused" in message.flags:
            others = [m.id for m in messages if m.id != message.id]
            findings.append(
                Finding(
                    "duplicate",
                    f"another message uses the same Message-ID ({', '.join(map(str, others))}"
                    f" and {message.id}): they differ, so both are kept",
                    where,
                    message.created_at,
                    {"messages": [m.id for m in messages]},
                )
            )
    return findings


def _sources(session: Session, message_id: int, user_id: int | None) -> list[str]:
    query = select(Sighting).where(Sighting.message_id == message_id)
    if user_id is not None:
        query = query.where(Sighting.user_id == user_id)
    return [_where(s) for s in session.scalars(query.order_by(Sighting.id))]


def _where(sighting: Sighting) -> str:
    if sighting.source == "imap":
        return f"imap {sighting.folder}, UID {sighting.uid}"
    return str(sighting.source)


def _unfinished(session: Session, account_id: int, mid: str, user_id: int | None) -> list[Finding]:
    """Sightings not finished: held for approval, waiting for the pipeline, failed."""
    query = (
        select(Sighting, RawMessage.data)
        .join(RawMessage, RawMessage.id == Sighting.raw_message_id)
        .where(
            Sighting.account_id == account_id,
            Sighting.state.in_(
                [
                    SightingState.QUARANTINED.value,
                    SightingState.PENDING.value,
                    SightingState.FAILED.value,
                ]
            ),
        )
        .order_by(Sighting.id)
        .limit(2000)
    )
    if user_id is not None:
        query = query.where(Sighting.user_id == user_id)
    findings = []
    for sighting, data in session.execute(query):
        if parse(data).message_id != mid:
            continue
        where = _where(sighting)
        if sighting.state == SightingState.QUARANTINED.value:
            findings.append(
                Finding(
                    "quarantined",
                    "held for approval: its sender did not verify "
                    f"({sighting.auth_results or 'no results kept'}); approve it with "
                    "`gateway quarantine approve`",
                    where,
                    sighting.received_at,
                    {"sighting": sighting.id, "auth_results": sighting.auth_results},
                )
            )
        elif sighting.state == SightingState.FAILED.value:
            findings.append(
                Finding(
                    "failed",
                    f"stored, but the pipeline failed on it: {sighting.error}",
                    where,
                    sighting.received_at,
                    {"sighting": sighting.id},
                )
            )
        else:
            findings.append(
                Finding(
                    "pending",
                    "stored; the pipeline has yet to attach it (it runs within seconds)",
                    where,
                    sighting.received_at,
                    {"sighting": sighting.id},
                )
            )
    return findings


def _refused(session: Session, account_id: int, mid: str, user_id: int | None) -> list[Finding]:
    query = select(DropboxRefusal).where(
        DropboxRefusal.account_id == account_id, DropboxRefusal.message_id_header == mid
    )
    if user_id is not None:
        query = query.where(DropboxRefusal.user_id == user_id)
    return [
        Finding(
            "refused",
            f"refused by the dropbox: {r.reason} ({r.auth_results or 'no results'})",
            "dropbox",
            r.refused_at,
            {"mail_from": r.mail_from, "auth_results": r.auth_results},
        )
        for r in session.scalars(query.order_by(DropboxRefusal.id))
    ]


def _scanned(session: Session, account_id: int, mid: str, user_id: int | None) -> list[Finding]:
    query = (
        select(ScannedMessage, MailboxFolder.name, Mailbox.email)
        .join(MailboxFolder, MailboxFolder.id == ScannedMessage.folder_id)
        .join(Mailbox, Mailbox.id == ScannedMessage.mailbox_id)
        .where(ScannedMessage.account_id == account_id, ScannedMessage.message_id_header == mid)
    )
    if user_id is not None:
        query = query.where(Mailbox.user_id == user_id)
    findings = []
    for scanned, folder, mailbox in session.execute(query.order_by(ScannedMessage.id)):
        addresses = sorted(
            session.scalars(
                select(ScannedAddress.address).where(ScannedAddress.scanned_id == scanned.id)
            )
        )
        where = f"imap {folder} of {mailbox}, UID {scanned.uid}"
        details = {"addresses": addresses}
        if scanned.wanted:
            findings.append(
                Finding(
                    "backfill_pending",
                    "scanned before a contact that it names existed; the next sync pass of "
                    f"{mailbox} fetches it",
                    where,
                    scanned.sent_at,
                    details,
                )
            )
        else:
            named = ", ".join(addresses) or "no address that could be a contact"
            findings.append(
                Finding(
                    "not_a_contact",
                    f"scanned, not fetched: no address of its headers ({named}) belonged to "
                    "a contact; adding one as a contact fetches it at the next sync pass",
                    where,
                    scanned.sent_at,
                    details,
                )
            )
    return findings


def _never_seen(session: Session, config: Config, account_id: int, user_id: int | None) -> Finding:
    query = select(Mailbox.email).where(Mailbox.account_id == account_id)
    if user_id is not None:
        query = query.where(Mailbox.user_id == user_id)
    mailboxes = list(session.scalars(query))
    days = config.imap.window_days
    synced = (
        f"the synced mailboxes ({', '.join(mailboxes)}) read the last {days} days"
        if mailboxes
        else "no mailbox is connected"
    )
    return Finding(
        "never_seen",
        "never seen: it did not come through the dropbox (nor was it refused there in the "
        f"last 7 days), was not sent through the gateway, and {synced}; older mail can be "
        "brought in with `gateway ingest`",
    )
