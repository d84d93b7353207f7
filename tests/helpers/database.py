"""Which database the suite runs on: SQLite by default, PostgreSQL when
GATEWAY_TEST_DATABASE_URL names one."""

from __future__ import annotations

import os

PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL", "")
