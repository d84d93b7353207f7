"""dropbox refusals

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dropbox_refusals",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_from", sa.String(length=998), nullable=False),
        sa.Column("message_id_header", sa.String(length=998), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("auth_results", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_dropbox_refusals_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_dropbox_refusals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dropbox_refusals")),
    )
    with op.batch_alter_table("dropbox_refusals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dropbox_refusals_message", ["account_id", "message_id_header"], unique=False
        )
        batch_op.create_index("ix_dropbox_refusals_refused_at", ["refused_at"], unique=False)


def downgrade() -> None:
    op.drop_table("dropbox_refusals")
