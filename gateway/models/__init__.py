"""Every table of the gateway, on one metadata (one Alembic history)."""

from gateway.models.accounts import Account, Plan, User, UserAddress
from gateway.models.base import Base, table_of, utcnow
from gateway.models.contacts import Contact, ContactEmail
from gateway.models.events import Event
from gateway.models.messages import (
    Conversation,
    Direction,
    Keep,
    Message,
    MessageAddress,
    MessageContact,
    MessageReference,
    RawMessage,
    Role,
    Sighting,
    SightingState,
    Source,
)

__all__ = [
    "Account",
    "Base",
    "Contact",
    "ContactEmail",
    "Conversation",
    "Direction",
    "Event",
    "Keep",
    "Message",
    "MessageAddress",
    "MessageContact",
    "MessageReference",
    "Plan",
    "RawMessage",
    "Role",
    "Sighting",
    "SightingState",
    "Source",
    "User",
    "UserAddress",
    "table_of",
    "utcnow",
]
