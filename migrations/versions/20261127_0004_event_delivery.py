"""events.delivery: the events table as the journeys' outbox (pending until signalled)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 07:00:00
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
    # Rows from before this revision were signalled before their request was answered: delivered.
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(length=16), server_default="delivered", nullable=False))
        batch_op.create_index("ix_events_delivery_received_at", ["delivery", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_delivery_received_at")
        batch_op.drop_column("delivery")
