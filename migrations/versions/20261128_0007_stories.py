"""stories: what an advocate told us on a case-study ask's page, one row per customer and ask

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("ask_id", sa.String(length=64), nullable=False),
        sa.Column("challenge", sa.String(length=2000), nullable=False),
        sa.Column("change", sa.String(length=2000), nullable=False),
        sa.Column("results", sa.String(length=2000), nullable=False),
        sa.Column("quote", sa.String(length=1000), nullable=False),
        sa.Column("may_name", sa.Boolean(), nullable=False),
        sa.Column("interview_time", sa.String(length=200), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
        sa.UniqueConstraint("customer_id", "ask_id", name=op.f("uq_stories_customer_id_ask_id")),
    )
    op.create_index(op.f("ix_stories_customer_id"), "stories", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stories_customer_id"), table_name="stories")
    op.drop_table("stories")
