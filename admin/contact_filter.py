"""The contact a list is filtered by (`contact_id` or `contact`, an address), for the
lists of messages, conversations and meetings."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.contacts import find_contact

NO_ONE = -1  # a contact id and an address that name two different contacts


def wanted_contact(
    session: Session, config: Config, account_id: int, contact_id: int | None, address: str | None
) -> int | None:
    """The contact's id: `contact_id`, or the one with `address` (NotFound if none has
    it); NO_ONE when both are given and disagree (the list is then empty)."""
    if address is None:
        return contact_id
    found = find_contact(session, account_id, address, config.addresses.local_part_case)
    return found.id if contact_id in (None, found.id) else NO_ONE
