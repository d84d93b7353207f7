"""The inbound role's verbs: `gateway mailbox` (IMAP sync) and `gateway quarantine`
(dropbox mail held for approval)."""

from __future__ import annotations

from gateway.cli.verbs import Verbs
from inbound.cli import mailboxes, quarantine


def register(verbs: Verbs) -> None:
    mailboxes.register(verbs)
    quarantine.register(verbs)
