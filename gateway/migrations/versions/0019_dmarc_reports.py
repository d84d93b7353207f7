"""DMARC aggregate reports and their rows

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dmarc_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("report_id", sa.String(length=200), nullable=False),
        sa.Column("begin", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_dmarc_reports_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_reports")),
        sa.UniqueConstraint(
            "domain",
            "org_name",
            "report_id",
            name=op.f("uq_dmarc_reports_domain_org_name_report_id"),
        ),
    )
    with op.batch_alter_table("dmarc_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dmarc_reports_account_id"), ["account_id"], unique=False
        )
    op.create_table(
        "dmarc_report_rows",
        sa.Column("id", ID, nullable=False),
        sa.Column("report_id", ID, nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(length=16), nullable=False),
        sa.Column("dkim", sa.String(length=8), nullable=False),
        sa.Column("spf", sa.String(length=8), nullable=False),
        sa.Column("spf_result", sa.String(length=16), nullable=False),
        sa.Column("header_from", sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["dmarc_reports.id"],
            name=op.f("fk_dmarc_report_rows_report_id_dmarc_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_report_rows")),
    )
    with op.batch_alter_table("dmarc_report_rows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dmarc_report_rows_report_id"), ["report_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dmarc_report_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dmarc_report_rows_report_id"))
    op.drop_table("dmarc_report_rows")
    with op.batch_alter_table("dmarc_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dmarc_reports_account_id"))
    op.drop_table("dmarc_reports")
