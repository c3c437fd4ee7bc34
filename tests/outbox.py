"""What the customer and the company see: outbox rows and ledger rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Message, RewardRow


def messages(sessions: sessionmaker[Session], customer_id: str) -> list[Message]:
    with sessions() as session:
        return list(session.scalars(select(Message).where(Message.customer_id == customer_id).order_by(Message.id)))


def templates_sent(sessions: sessionmaker[Session], customer_id: str) -> list[str]:
    return [m.template for m in messages(sessions, customer_id) if m.status == "sent"]


def ledger(sessions: sessionmaker[Session], customer_id: str) -> list[RewardRow]:
    with sessions() as session:
        return list(
            session.scalars(select(RewardRow).where(RewardRow.customer_id == customer_id).order_by(RewardRow.id))
        )
