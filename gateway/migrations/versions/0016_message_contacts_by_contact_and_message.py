"""message_contacts indexed by (contact_id, message_id)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_contacts_contact_message", ["contact_id", "message_id"], unique=False
        )
        batch_op.drop_index("ix_message_contacts_contact_id")


def downgrade() -> None:
    with op.batch_alter_table("message_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_message_contacts_contact_id", ["contact_id"], unique=False)
        batch_op.drop_index("ix_message_contacts_contact_message")
