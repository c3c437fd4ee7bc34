"""Program KPIs from the database, reportable next to other channels."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from storage.db import make_engine, make_sessionmaker
from storage.models import AskRow, Customer, Event, Message, ReferralRow, RewardRow


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def program_report(database_url: str) -> dict[str, Any]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as s:
            customers = s.scalar(select(func.count()).select_from(Customer)) or 0
            nps = s.execute(
                select(Event.customer_id, Event.occurred_at, Event.data).where(Event.type == "nps_response")
            ).all()
            latest: dict[str, tuple[Any, int]] = {}
            for cid, at, data in nps:
                if cid not in latest or at >= latest[cid][0]:
                    latest[cid] = (at, int(data["score"]))
            promoters = sum(score >= 9 for _, score in latest.values())
            asks = Counter(s.execute(select(AskRow.status)).scalars())
            asked = s.scalar(select(func.count(func.distinct(AskRow.customer_id)))) or 0
            completions = Counter(s.execute(select(AskRow.customer_id).where(AskRow.status == "completed")).scalars())
            referrals = Counter(s.execute(select(ReferralRow.status)).scalars())
            pipeline = s.scalar(
                select(func.sum(ReferralRow.amount)).where(ReferralRow.status.in_(("opportunity", "won")))
            ) or Decimal(0)
            revenue = s.scalar(select(func.sum(ReferralRow.amount)).where(ReferralRow.status == "won")) or Decimal(0)
            rewards = {
                status: {"count": count, "amount": float(amount or 0)}
                for status, count, amount in s.execute(
                    select(RewardRow.status, func.count(), func.sum(RewardRow.amount)).group_by(RewardRow.status)
                )
            }
            sent = s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent")) or 0
            touched = s.scalar(select(func.count(func.distinct(Message.customer_id)))) or 0
    finally:
        engine.dispose()
    total_referrals = sum(referrals.values())
    advocates = len(completions)
    return {
        "customers": customers,
        "advocate_pool_size": advocates,
        "promoter_rate": _ratio(promoters, len(latest)),
        "activities_per_advocate": _ratio(sum(completions.values()), advocates),
        "program_participation": _ratio(advocates, asked),
        "repeat_advocates": sum(1 for n in completions.values() if n >= 2),
        "asks_by_status": dict(asks),
        "referral_leads": total_referrals,
        "referrals_by_status": dict(referrals),
        "referral_conversion_rate": _ratio(referrals.get("won", 0), total_referrals),
        "referral_pipeline": float(pipeline),
        "referral_revenue": float(revenue),
        "rewards_by_status": rewards,
        "emails_sent": sent,
        "advocacy_touches_per_customer": _ratio(sent, touched),
    }
