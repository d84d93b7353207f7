"""ContactMatcher: which of a message's addresses belong to contacts of the account.

One indexed lookup per chunk of addresses on (account_id, address), the
unique key of contact_emails: the cost does not grow with the number of
contacts.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import ContactEmail

CHUNK = 500


def match_contacts(session: Session, account_id: int, addresses: Iterable[str]) -> dict[str, int]:
    """normalized address -> contact id, for the addresses that are contacts."""
    wanted = sorted(set(addresses))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        rows = session.execute(
            select(ContactEmail.address, ContactEmail.contact_id).where(
                ContactEmail.account_id == account_id, ContactEmail.address.in_(chunk)
            )
        )
        found.update({address: contact_id for address, contact_id in rows})
    return found
