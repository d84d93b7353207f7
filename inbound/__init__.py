"""Inbound mail: the BCC dropbox SMTP server and IMAP sync (later issues)."""
