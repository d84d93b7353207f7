"""The copy of a sent message in the user's Sent folder, exactly once.

The delivery role calls `save_to_sent` after a message went out (the runner wires it:
outbound does not import inbound). The user's connected mailbox (either sync mode)
is searched for the Message-ID first (UID SEARCH HEADER, the value quoted by us:
nothing from mail reaches the IMAP wire raw). Servers that save their own copy of
mail sent through them (Gmail, Outlook, Zoho) get time to do so, and each mailbox
remembers whether its server does; otherwise the copy is APPENDed with \\Seen. A
crash between the APPEND and its record is harmless: the next try finds the copy.
"""

from __future__ import annotations

import logging
import re
import time

from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, MailboxState, utcnow
from gateway.vault import Vault
from inbound.imap.connection import close
from inbound.imap.folders import find_folders
from inbound.imap.mailboxes import open_session
from inbound.imap.rawfetch import search_uids

log = logging.getLogger(__name__)
GRACE = 3.0  # seconds a server that saves its own copy gets to do so
_SAFE_ID = re.compile(r"[^\x00-\x20\x7f<>]+@[^\x00-\x20\x7f<>]+")


def save_to_sent(
    db: Database,
    config: Config,
    vault: Vault,
    user_id: int,
    raw: bytes,
    message_id: str,
    via_mailbox: bool,
    grace: float = GRACE,
) -> str:
    """ "appended", "present" (already there, or saved by the server) or "no mailbox"."""
    with db.read() as session:
        mailbox = session.scalars(
            select(Mailbox)
            .where(Mailbox.user_id == user_id, Mailbox.state == MailboxState.ACTIVE.value)
            .order_by(Mailbox.id)
        ).first()
        if mailbox is None:
            return "no mailbox"
        mailbox_id, saves = mailbox.id, mailbox.server_saves_sent
    if not _SAFE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID {message_id!r} cannot be searched for safely")
    client = open_session(db, config, vault, mailbox_id)
    try:
        sent = find_folders(client.list_folders()).sent
        if sent is None:
            return "no mailbox"  # no Sent folder to put it in
        client.select_folder(sent)
        if _present(client, message_id):
            return _learnt(db, mailbox_id, via_mailbox, True)
        if via_mailbox and saves is not False:
            time.sleep(grace)  # a server that copies by itself may not have done so yet
            client.noop()
            if _present(client, message_id):
                return _learnt(db, mailbox_id, via_mailbox, True)
        client.append(sent, raw, flags=[b"\\Seen"], msg_time=utcnow())
        _learnt(db, mailbox_id, via_mailbox, False)
        return "appended"
    finally:
        close(client)


def _present(client: object, message_id: str) -> bool:
    quoted = '"' + message_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return bool(search_uids(client, "HEADER", "Message-ID", quoted))


def _learnt(db: Database, mailbox_id: int, via_mailbox: bool, saves: bool) -> str:
    if via_mailbox:
        with db.session() as session:
            session.get_one(Mailbox, mailbox_id).server_saves_sent = saves
    return "present" if saves else "appended"
