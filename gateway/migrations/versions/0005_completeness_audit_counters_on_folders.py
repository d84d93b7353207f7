"""completeness audit counters on folders

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 10:01:05.095556
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missing", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("audited_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_folders", schema=None) as batch_op:
        batch_op.drop_column("audited_at")
        batch_op.drop_column("missing")
