"""referrals: the referee's role and a note for sales, from the advocate's referral form

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 14:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.add_column(sa.Column("referee_role", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("note_for_sales", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.drop_column("note_for_sales")
        batch_op.drop_column("referee_role")
