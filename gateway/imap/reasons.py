"""Why a mailbox needs a person: the reason a CRM shows, from how sign-in failed.

password_changed  the server refused the password (changed, or an app
                  password that was revoked)
oauth_revoked     the provider refused the OAuth2 grant (access revoked, or the
                  refresh token expired)
imap_disabled     the server says IMAP is turned off for the account
throttled         the server keeps refusing sign-in as "too many" (rate limits)
not_allowed       the gateway's own rules refuse the server (a private address,
                  IMAP without TLS)
"""

from __future__ import annotations

import re

from gateway.imap.connection import REFUSED, MailboxError, is_throttling

REASONS = ("password_changed", "oauth_revoked", "imap_disabled", "throttled", "not_allowed")
# Gmail: "[ALERT] IMAP access is disabled for your domain", "Please log in via your web
# browser ... enable IMAP"; Microsoft: "User is authenticated but not connected" when
# IMAP is off for the mailbox; Zoho: "You are yet to enable IMAP for your account".
_IMAP_OFF = re.compile(
    r"IMAP (access )?(is )?(disabled|not enabled)|enable IMAP|IMAP use is disabled|"
    r"authenticated but not connected",
    re.IGNORECASE,
)


def reconnect_reason(error: MailboxError, auth: str) -> str:
    text = str(error)
    if error.kind == REFUSED:
        return "not_allowed"
    if _IMAP_OFF.search(text):
        return "imap_disabled"
    if is_throttling(text):
        return "throttled"
    if auth == "oauth2":
        return "oauth_revoked"
    return "password_changed"
