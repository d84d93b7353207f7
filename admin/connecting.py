"""Connecting a mailbox from the pages and the API: IMAP, then SMTP, then saved.

The IMAP steps are inbound's (inbound.imap.mailboxes); this adds the SMTP steps
(outbound.smtp_check), so a mailbox whose SMTP server refuses the same password
is not saved as if it could send.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.db import Database
from gateway.imap.connection import ImapSettings
from gateway.models import Mailbox
from gateway.providers import Server
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, SendingCheck, add_mailbox, reconnect_id
from outbound.smtp_check import check_sending


def sending_check(config: Config) -> SendingCheck:
    def check(smtp: Server, settings: ImapSettings, secret: str) -> None:
        check_sending(
            config,
            smtp,
            settings.username,
            settings.auth,
            secret,
            settings.tls_verify,
            settings.provider,
        )

    return check


def connect_mailbox(
    db: Database, config: Config, vault: Vault, request: MailboxRequest, secret: str
) -> Mailbox:
    """Sign in to IMAP and SMTP; the mailbox is saved only when both worked."""
    return add_mailbox(db, config, vault, request, secret, check_sending=sending_check(config))


def reconnect_mailbox(
    db: Database, config: Config, vault: Vault, mailbox_id: int, secret: str
) -> Mailbox:
    """New credentials, tried on IMAP and SMTP before they are kept."""
    check = sending_check(config)
    return reconnect_id(db, config, vault, mailbox_id, secret, check_sending=check)
