"""match_contacts(): which of a message's addresses belong to contacts of the account.

One indexed lookup per chunk of addresses on (account_id, address), the
unique key of contact_emails: the cost does not grow with the number of
contacts. The statement is built once and run on the session's connection
(this is the pipeline's hot path).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.models import ContactEmail, table_of

CHUNK = 500
_emails = table_of(ContactEmail).c
_LOOKUP = select(_emails.address, _emails.contact_id).where(
    _emails.account_id == bindparam("account_id"),
    _emails.address.in_(bindparam("addresses", expanding=True)),
)


def match_contacts(session: Session, account_id: int, addresses: Iterable[str]) -> dict[str, int]:
    """normalized address -> contact id, for the addresses that are contacts."""
    wanted = sorted(set(addresses))
    found: dict[str, int] = {}
    if not wanted:
        return found
    connection = session.connection()
    for start in range(0, len(wanted), CHUNK):
        rows = connection.execute(
            _LOOKUP, {"account_id": account_id, "addresses": wanted[start : start + CHUNK]}
        )
        found.update({address: contact_id for address, contact_id in rows})
    return found
