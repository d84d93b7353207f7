"""IMAP sync of connected mailboxes: connection, folders, header scan, sync, the `imap` role."""
