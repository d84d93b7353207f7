"""Every table of the gateway, on one metadata (one Alembic history)."""

from gateway.models.accounts import Account, Plan, User, UserAddress
from gateway.models.base import Base, table_of, utcnow
from gateway.models.contacts import Contact, ContactEmail
from gateway.models.events import Event
from gateway.models.leases import Lease
from gateway.models.mailboxes import (
    FolderRole,
    Mailbox,
    MailboxFolder,
    MailboxState,
    ScannedAddress,
    ScannedMessage,
    Security,
    SyncMode,
)
from gateway.models.meetings import (
    Calendar,
    CalendarEntry,
    CalendarKind,
    Meeting,
    MeetingAttendee,
    MeetingStatus,
)
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
from gateway.models.outbound import (
    ApiToken,
    DeliveryState,
    DkimKey,
    DmarcReport,
    DmarcReportRow,
    IdempotencyKey,
    OutboundMessage,
    OutboundRecipient,
    SendingDomain,
)
from gateway.models.refusals import DropboxRefusal
from gateway.models.sessions import SignInFailure, WebSession
from gateway.models.webhooks import WebhookDelivery, WebhookEndpoint, WebhookState

__all__ = [
    "Account",
    "ApiToken",
    "Base",
    "Calendar",
    "CalendarEntry",
    "CalendarKind",
    "Contact",
    "ContactEmail",
    "Conversation",
    "DeliveryState",
    "Direction",
    "DkimKey",
    "DmarcReport",
    "DmarcReportRow",
    "DropboxRefusal",
    "Event",
    "FolderRole",
    "IdempotencyKey",
    "Keep",
    "Lease",
    "Mailbox",
    "MailboxFolder",
    "MailboxState",
    "Meeting",
    "MeetingAttendee",
    "MeetingStatus",
    "Message",
    "MessageAddress",
    "MessageContact",
    "MessageReference",
    "OutboundMessage",
    "OutboundRecipient",
    "Plan",
    "RawMessage",
    "Role",
    "ScannedAddress",
    "ScannedMessage",
    "Security",
    "SendingDomain",
    "Sighting",
    "SightingState",
    "SignInFailure",
    "Source",
    "SyncMode",
    "User",
    "UserAddress",
    "WebSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookState",
    "table_of",
    "utcnow",
]
