"""suppressions: addresses and customers no email may reach, whatever a journey's state says

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 13:30:00
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
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("scope", "key", "reason", name=op.f("uq_suppressions_scope_key_reason")),
    )
    op.create_index(op.f("ix_suppressions_customer_id"), "suppressions", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_suppressions_customer_id"), table_name="suppressions")
    op.drop_table("suppressions")
