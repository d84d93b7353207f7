"""header index of scanned messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:48:32.017367
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scanned_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "mailbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "folder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("message_id_header", sa.String(length=998), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_scanned_messages_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["mailbox_folders.id"],
            name=op.f("fk_scanned_messages_folder_id_mailbox_folders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_scanned_messages_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scanned_messages")),
        sa.UniqueConstraint(
            "folder_id",
            "uidvalidity",
            "uid",
            name=op.f("uq_scanned_messages_folder_id_uidvalidity_uid"),
        ),
    )
    with op.batch_alter_table("scanned_messages", schema=None) as batch_op:
        batch_op.create_index("ix_scanned_messages_wanted", ["mailbox_id", "wanted"], unique=False)

    op.create_table(
        "scanned_addresses",
        sa.Column(
            "scanned_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_scanned_addresses_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scanned_id"],
            ["scanned_messages.id"],
            name=op.f("fk_scanned_addresses_scanned_id_scanned_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scanned_id", "address", name=op.f("pk_scanned_addresses")),
    )
    with op.batch_alter_table("scanned_addresses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scanned_addresses_account_id", ["account_id", "address"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("scanned_addresses", schema=None) as batch_op:
        batch_op.drop_index("ix_scanned_addresses_account_id")

    op.drop_table("scanned_addresses")
    with op.batch_alter_table("scanned_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_scanned_messages_wanted")

    op.drop_table("scanned_messages")
