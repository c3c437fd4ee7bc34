"""messages: template provenance (sources hash, files, provider template id) and send attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("template_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("template_sources", sa.Text(), nullable=True))
        batch.add_column(sa.Column("provider_template_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("attempts")
        batch.drop_column("provider_template_id")
        batch.drop_column("template_sources")
        batch.drop_column("template_hash")
