"""CRM Email Gateway core: config, database, the message pipeline and the CLI."""

__version__ = "0.1.0"
