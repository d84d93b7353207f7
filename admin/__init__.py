"""The admin web app and the REST API (later issues)."""
