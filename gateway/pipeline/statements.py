"""The statements of the pipeline's hot path, built once (ORM statement building
costs more than SQLite's work here)."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, union_all, update

from gateway.models import Event, Message, MessageAddress, Sighting, SightingState, table_of
from gateway.prepared import prepared

_m = table_of(Message).c
_s = table_of(Sighting).c
# Two index searches, not one OR: given `a = ? AND (b = ? OR c = ?)`, SQLite
# searches the (account_id, identity) index on account_id alone and scans every
# message of the account.
SEEN = prepared(
    "seen",
    lambda: union_all(
        select(_m.id, _m.identity).where(
            _m.account_id == bindparam("account_id"), _m.identity == bindparam("identity")
        ),
        select(_m.id, _m.identity).where(
            _m.account_id == bindparam("account_id"),
            _m.message_id_header == bindparam("message_id"),
        ),
    ),
)
FLAGS_OF = select(_m.id, _m.flags).where(_m.id.in_(bindparam("b_ids", expanding=True)))
SET_FLAGS = (
    update(table_of(Message)).where(_m.id == bindparam("b_id")).values(flags=bindparam("b_flags"))
)
INSERT_MESSAGE = prepared(
    "insert_message",
    lambda: insert(table_of(Message)).returning(_m.id),
    (
        "account_id",
        "owner_user_id",
        "raw_message_id",
        "conversation_id",
        "identity",
        "message_id_header",
        "subject",
        "sent_at",
        "direction",
        "from_addresses",
        "to_addresses",
        "cc_addresses",
        "bcc_addresses",
        "flags",
        "created_at",
    ),
)
INSERT_ADDRESSES = insert(table_of(MessageAddress))
INSERT_EVENT = insert(table_of(Event))
DONE = (
    update(table_of(Sighting))
    .where(_s.id == bindparam("b_id"))
    .values(
        message_id=bindparam("b_message_id"),
        state=SightingState.DONE.value,
        processed_at=bindparam("b_now"),
        error=None,
    )
)
