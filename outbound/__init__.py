"""Outbound mail: SMTP submission, DKIM signing, the delivery queue (later issues)."""
