"""sent copy

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 12:45:21.028936
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_saves_sent", sa.Boolean(), nullable=True))

    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_copy", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_column("sent_copy")

    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("server_saves_sent")
