"""What a batch's messages look up, read once for the whole batch instead of once a
message: the messages already stored with their identities or Message-IDs (the
SEEN lookup), and the contacts of their addresses. On PostgreSQL every statement
is a round trip; a batch of N messages costs a few here instead of 2N.

The batch's own writes are added as it goes: a message stored is seen by the later
ones of the batch. Contacts created in the batch (auto-create, meeting attendees)
make the later messages look theirs up one at a time again, as before. Another
node storing the same message meanwhile is caught by the unique (account,
identity) of messages: the batch fails and is finished one message at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.matching import match_contacts
from gateway.models import Message

CHUNK = 500  # identities (and Message-IDs) per statement


@dataclass
class Wanted:
    """What one message of the batch will look up."""

    account_id: int
    identity: str
    message_id: str | None
    addresses: Sequence[str]


@dataclass
class BatchLookups:
    # account -> (message id, identity, Message-ID header) of the messages found
    messages: dict[int, list[tuple[int, str, str | None]]] = field(default_factory=dict)
    contacts: dict[int, dict[str, int]] = field(default_factory=dict)  # account -> address -> id
    contacts_current: bool = True  # False once the batch created a contact

    @classmethod
    def load(cls, session: Session, wanted: Iterable[Wanted]) -> BatchLookups:
        by_account: dict[int, list[Wanted]] = {}
        for item in wanted:
            by_account.setdefault(item.account_id, []).append(item)
        found = cls()
        connection = session.connection()
        for account_id, items in by_account.items():
            identities = sorted({i.identity for i in items})
            message_ids = sorted({i.message_id or "" for i in items})
            rows = found.messages.setdefault(account_id, [])
            for start in range(0, max(len(identities), len(message_ids)), CHUNK):
                query = select(Message.id, Message.identity, Message.message_id_header).where(
                    Message.account_id == account_id,
                    or_(
                        Message.identity.in_(identities[start : start + CHUNK]),
                        Message.message_id_header.in_(message_ids[start : start + CHUNK]),
                    ),
                )
                rows += [(int(r[0]), str(r[1]), r[2]) for r in connection.execute(query)]
            addresses = {a for i in items for a in i.addresses}
            found.contacts[account_id] = match_contacts(session, account_id, addresses)
        return found

    def seen(self, account_id: int, identity: str, message_id: str | None) -> dict[int, str]:
        """As the SEEN statement answers: message id -> identity of the messages with
        this identity or this Message-ID ("" matching "" only, as in SQL)."""
        header = message_id or ""
        return {
            id_: ident
            for id_, ident, mid in self.messages.get(account_id, [])
            if ident == identity or (mid is not None and mid == header)
        }

    def matched(self, account_id: int, candidates: Sequence[str]) -> dict[str, int] | None:
        """The contacts of `candidates`; None once the batch created a contact (then
        the caller looks them up itself)."""
        if not self.contacts_current or account_id not in self.contacts:
            return None
        known = self.contacts[account_id]
        return {a: known[a] for a in candidates if a in known}

    def stored(self, account_id: int, message_id: int, identity: str, header: str | None) -> None:
        self.messages.setdefault(account_id, []).append((message_id, identity, header))

    def contacts_created(self) -> None:
        self.contacts_current = False
