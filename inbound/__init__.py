"""Inbound mail, the roles that bring it in: the BCC dropbox SMTP server (dropbox,
with sender verification and forwarded mail) and IMAP sync of connected mailboxes
(imap). Their CLI verbs, `mailbox` and `quarantine`, live in inbound.cli."""
