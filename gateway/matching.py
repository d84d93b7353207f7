"""match_contacts(): which of a message's addresses belong to contacts of the account.

One indexed lookup per chunk of addresses on (account_id, address), the
unique key of contact_emails: the cost does not grow with the number of
contacts. This is the pipeline's hot path, so the statement is compiled once
per list length (see `gateway.prepared.padded_in`) and run on the DB-API cursor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from gateway.models import ContactEmail, table_of
from gateway.prepared import IN_SIZES, Prepared, padded_in, prepared

CHUNK = IN_SIZES[-1]
_emails = table_of(ContactEmail).c


def lookup(size: int) -> Any:
    """The lookup of `size` addresses (bound as a0, a1, ...) in the account's contacts."""
    return select(_emails.address, _emails.contact_id).where(
        _emails.account_id == bindparam("account_id"),
        _emails.address.in_([bindparam(f"a{i}", type_=_emails.address.type) for i in range(size)]),
    )


@functools.cache
def _lookup_of(size: int) -> Callable[[Connection], Prepared]:
    return prepared(f"match_contacts_{size}", functools.partial(lookup, size))


def match_contacts(session: Session, account_id: int, addresses: Iterable[str]) -> dict[str, int]:
    """normalized address -> contact id, for the addresses that are contacts."""
    wanted = sorted(set(addresses))
    found: dict[str, int] = {}
    connection = session.connection() if wanted else None
    for start in range(0, len(wanted), CHUNK):
        assert connection is not None
        size, binds = padded_in(wanted[start : start + CHUNK], "a")
        rows = _lookup_of(size)(connection).execute(connection, {"account_id": account_id, **binds})
        found.update({address: contact_id for address, contact_id in rows.fetchall()})
    return found
