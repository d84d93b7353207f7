"""sending domains and their last DNS check

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sending_domains",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sending_domains_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sending_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_sending_domains_domain")),
    )
    with op.batch_alter_table("sending_domains", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sending_domains_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sending_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sending_domains_account_id"))
    op.drop_table("sending_domains")
