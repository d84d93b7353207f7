"""Which folders to sync: INBOX, and Sent found by RFC 6154 special-use or by name.

Gmail's All Mail, Junk/Spam, Trash, Drafts are never synced (the same mail,
or mail nobody wants on a contact). Name fallbacks cover common languages for
servers that announce no special-use flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SENT_NAMES = (
    "sent",
    "sent items",
    "sent mail",
    "sent messages",
    "[gmail]/sent mail",
    "[google mail]/sent mail",
    "inbox.sent",
    "inbox/sent",
    "gesendet",
    "gesendete elemente",
    "gesendete objekte",
    "envoyés",
    "éléments envoyés",
    "messages envoyés",
    "enviados",
    "elementos enviados",
    "itens enviados",
    "posta inviata",
    "inviati",
    "verzonden",
    "verzonden items",
    "skickat",
    "skickade objekt",
    "sendt",
    "sendte elementer",
    "wysłane",
    "elementy wysłane",
    "отправленные",
    "送信済み",
    "已发送",
)
SKIP_FLAGS = (b"\\All", b"\\Junk", b"\\Trash", b"\\Drafts", b"\\Flagged", b"\\Noselect")


@dataclass(frozen=True)
class Folders:
    inbox: str
    sent: str | None


def find_folders(listing: Sequence[tuple[Sequence[bytes], Any, str]]) -> Folders:
    """From imapclient's list_folders(): (flags, delimiter, name) per folder."""
    inbox = "INBOX"
    sent_by_flag = sent_by_name = None
    for flags, _, name in listing:
        lowered = {bytes(f).lower() for f in flags}
        if name.upper() == "INBOX":
            inbox = name
        if b"\\sent" in lowered and sent_by_flag is None:
            sent_by_flag = name
        elif (
            sent_by_name is None
            and not lowered & {f.lower() for f in SKIP_FLAGS}
            and _normalized(name) in SENT_NAMES
        ):
            sent_by_name = name
    return Folders(inbox, sent_by_flag or sent_by_name)


def _normalized(name: str) -> str:
    return " ".join(name.replace(".", "/").split()).casefold() if name else ""
