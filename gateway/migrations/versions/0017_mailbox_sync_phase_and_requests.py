"""mailboxes: sync phase, sync requests, reconnect reason

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_phase", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column("sync_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reconnect_reason", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("reconnect_reason")
        batch_op.drop_column("sync_requested_at")
        batch_op.drop_column("sync_phase")
