"""The IMAP session the roles share: signing in safely (connection), COMPRESS
(compress), special-use folders (folders), reading FETCH and SEARCH answers
(rawfetch) and a mailbox's signed-in session (session). The sync (inbound) and the
copy to Sent (outbound) both build on it."""
