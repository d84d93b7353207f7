"""The mailbox a sync pass works on: who owns what it stores, how each message it
stores is known again (its sighting's source key), and which are held already."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.db import Database
from gateway.leases import Fence
from gateway.models import Keep, Message, Sighting, SightingState, Source, utcnow
from gateway.models.mailboxes import Mailbox, MailboxFolder
from gateway.store import Arrival
from inbound.imap.scan import Scanned


@dataclass(frozen=True)
class Target:
    db: Database
    config: Config
    mailbox_id: int
    account_id: int
    user_id: int
    sync_mode: str
    stored: Callable[[], None]  # told when messages were stored (wakes the pipeline)
    fence: Fence | None = None  # the imap role's lease of the mailbox: every write checks it

    @classmethod
    def load(
        cls,
        db: Database,
        config: Config,
        mailbox_id: int,
        stored: Callable[[], None],
        fence: Fence | None = None,
    ) -> Target:
        with db.read() as session:
            mailbox = session.get_one(Mailbox, mailbox_id)
            return cls(
                db,
                config,
                mailbox_id,
                mailbox.account_id,
                mailbox.user_id,
                mailbox.sync_mode,
                stored,
                fence,
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction of the sync, fenced by the mailbox's lease when held:
        a node that lost the lease writes nothing (gateway.leases.LeaseLost)."""
        with self.db.session() as session:
            if self.fence is not None:
                self.fence(session)
            yield session

    @property
    def case(self) -> str:
        return self.config.addresses.local_part_case

    def key(self, state: MailboxFolder, uid: int, scanned: Scanned | None) -> str:
        """The source key of a message's sighting: by Gmail's message id where known
        (the same message under several labels is one sighting), else by UID."""
        if scanned is not None and scanned.gm_msgid is not None:
            return f"imap:{self.mailbox_id}:gm:{scanned.gm_msgid}"
        return source_key(self.mailbox_id, state.name, state.uidvalidity or 0, uid)

    def arrival(self, state: MailboxFolder, uid: int, scanned: Scanned | None = None) -> Arrival:
        return Arrival(
            self.user_id,
            Source.IMAP,
            Keep.IF_MATCHED,
            source_key=self.key(state, uid, scanned),
            folder=state.name[:512],
            uidvalidity=state.uidvalidity,
            uid=uid,
            account_id=self.account_id,
        )

    def held(
        self,
        session: Session,
        state: MailboxFolder,
        uids: Sequence[int],
        scanned: dict[int, Scanned],
    ) -> set[int]:
        """Of `uids`, those already held: a live sighting of this very message (by UID,
        or by Gmail's message id under another label), or a stored message with the
        same identity (it came another way: the dropbox, another folder). Identity,
        not Message-ID alone: a message reusing another's Message-ID is not held."""
        if not uids:
            return set()
        keys = {self.key(state, uid, scanned.get(uid)): uid for uid in uids}
        have = {
            keys[key]
            for key in session.scalars(
                select(Sighting.source_key).where(
                    Sighting.user_id == self.user_id,
                    Sighting.source == Source.IMAP.value,
                    Sighting.source_key.in_(list(keys)),
                    Sighting.state != SightingState.DISCARDED.value,
                )
            )
        }
        identities: dict[str, list[int]] = {}
        for uid in uids:
            if uid in scanned and scanned[uid].identity:
                identities.setdefault(scanned[uid].identity, []).append(uid)
        for identity in session.scalars(
            select(Message.identity).where(
                Message.account_id == self.account_id,
                Message.identity.in_(list(identities)),
            )
        ):
            have.update(identities[identity])
        return have

    def update(self, state: MailboxFolder, **values: Any) -> None:
        """Set the folder's values, in the database and in `state`."""
        with self.session() as session:
            folder = session.get_one(MailboxFolder, state.id)
            for key, value in values.items():
                setattr(folder, key, value)
                setattr(state, key, value)
            folder.updated_at = utcnow()


def source_key(mailbox_id: int, folder: str, uidvalidity: int, uid: int) -> str:
    """One sighting per message of a folder: mailbox, folder, UIDVALIDITY and UID."""
    digest = hashlib.sha256(folder.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"imap:{mailbox_id}:{digest}:{uidvalidity}:{uid}"
