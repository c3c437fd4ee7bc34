"""referral_claims: one row per referee mailbox (workflows.addresses.address_key), so one referee is referred once

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from workflows.addresses import address_key

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    claims = op.create_table(
        "referral_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referee_key", sa.String(length=320), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_claims")),
        sa.UniqueConstraint("referee_key", name=op.f("uq_referral_claims_referee_key")),
    )
    # Referrals made before: the first advocate to refer a mailbox keeps it.
    rows = op.get_bind().execute(
        sa.text("SELECT customer_id, referee_email, created_at FROM referrals ORDER BY created_at, id")
    )
    seen: dict[str, dict[str, object]] = {}
    for customer_id, email, created_at in rows:
        key = address_key(email)
        seen.setdefault(key, {"referee_key": key, "customer_id": customer_id, "claimed_at": created_at})
    if seen:
        op.bulk_insert(claims, list(seen.values()))


def downgrade() -> None:
    op.drop_table("referral_claims")
