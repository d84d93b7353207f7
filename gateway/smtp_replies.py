"""Every SMTP reply the gateway's servers give, named (RFC 5321 codes, RFC 3463 status).

Refusals are raised as the gateway.errors class that matches their code (TryLater
for a 4xx) and become replies in one place, gateway.smtp_server.reply_for(); the
servers send the others as they are. aiosmtpd's own replies get an enhanced status
added by gateway.smtp_server.with_status().
"""

from __future__ import annotations

from gateway.errors import Reply

OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
ACCEPTED = Reply(250, "2.0.0", "Message accepted")
QUARANTINED = Reply(250, "2.0.0", "Message accepted and held for the user's approval")
REPORT_RECEIVED = Reply(250, "2.0.0", "DMARC report received")

START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")

SENDER_NOT_VERIFIED = Reply(550, "5.7.1", "Sender not verified")
UNKNOWN_RECIPIENT = Reply(550, "5.1.1", "No such dropbox address")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied: this server only accepts its own addresses")
SOURCE_ROUTE = Reply(550, "5.7.1", "Source routes are not accepted")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
NEEDS_SMTPUTF8_ADDRESS = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
NEEDS_SMTPUTF8_HEADERS = Reply(550, "5.6.7", "Non-ASCII headers require SMTPUTF8")
BARE_NEWLINE = Reply(550, "5.6.0", "Bare CR or LF in message: lines must end with CRLF")
TOO_BIG = Reply(552, "5.3.4", "Message too big")
NOT_A_REPORT = Reply(550, "5.6.0", "Not a DMARC aggregate report (RFC 7489 appendix C)")
REPORT_TOO_BIG = Reply(552, "5.3.4", "DMARC report too big once uncompressed")
TLS_ACTIVE = Reply(503, "5.5.1", "TLS is already active")
NEED_RECIPIENT = Reply(503, "5.5.1", "Error: need RCPT command")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long (see RFC5321 4.5.3.1.6)")
DATA_TOO_MUCH = Reply(552, "5.3.4", "Error: Too much mail data")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Idle too long, closing connection")
SESSION_TOO_LONG = Reply(421, "4.4.2", "Connection time limit reached, closing connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address, try later")
STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage, try again later")
TRY_LATER = Reply(451, "4.3.0", "Temporary local problem, try again later")

# Submission (RFC 4954, RFC 6409)
QUEUED = Reply(250, "2.0.0", "Queued")  # the queue id is added
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")
BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode base64")
BAD_PLAIN = Reply(501, "5.5.2", "Cannot split the PLAIN response")
AUTH_TOO_MANY_FAILURES = Reply(454, "4.7.0", "Too many failed authentications, try again later")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
AUTH_NEEDS_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTHZID_REFUSED = Reply(535, "5.7.8", "Authorization identity must be the user signing in")
NOT_YOUR_ADDRESS = Reply(553, "5.7.1", "Sender address is not one of the signed-in user's")
NO_NULL_SENDER = Reply(553, "5.7.1", "A null sender is not accepted on submission")
BAD_HEADER = Reply(554, "5.6.0", "Malformed header")  # the reason is added
NO_FROM = Reply(554, "5.6.0", "The message has no From header")
RATE_LIMITED = Reply(451, "4.7.1", "Sending rate limit reached, try again later")
