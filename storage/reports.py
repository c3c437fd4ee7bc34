"""Program KPIs from the database, reportable next to other channels.

A report covers a window [since, until) (all time by default): each figure
counts what happened in it, by the timestamp that says when (an NPS answer by
when it was given, an ask by when it was sent, a completion by when it was
completed, a referral by when it was submitted, a reward by when it was
earned). Advocate retention compares two periods ending at `until`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from storage.db import database
from storage.models import AskRow, Customer, Event, Message, ReferralClick, ReferralRow, RewardRow
from workflows.events import EventError, parse_timestamp
from workflows.model import PROGRAMS


class ReportError(ValueError):
    """A report argument that cannot be used, naming which."""


def parse_bound(name: str, value: str | None) -> datetime | None:
    """`--since` / `--until`: an ISO 8601 date or timestamp, read as UTC when it has no offset."""
    if value is None:
        return None
    try:
        return parse_timestamp(value, name)
    except EventError:
        raise ReportError(f"{name}: {value!r} is not an ISO 8601 date or timestamp") from None


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def _naive_utc(at: datetime) -> datetime:
    # SQLite keeps timestamps without their offset; everything stored is UTC.
    return at.astimezone(timezone.utc).replace(tzinfo=None)


class _Window:
    def __init__(self, session: Session, since: datetime | None, until: datetime | None) -> None:
        sqlite = session.get_bind().dialect.name == "sqlite"
        convert = _naive_utc if sqlite else (lambda at: at)
        self.since = convert(since) if since else None
        self.until = convert(until) if until else None

    def __call__(self, column: InstrumentedAttribute[Any]) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.since is not None:
            where.append(column >= self.since)
        if self.until is not None:
            where.append(column < self.until)
        return where


def build_report(
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    retention_days: int = 90,
) -> dict[str, Any]:
    if since and until and since >= until:
        raise ReportError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    if retention_days < 1:
        raise ReportError(f"--retention-days must be at least 1, not {retention_days}")
    within = _Window(session, since, until)
    s = session

    nps = s.execute(
        select(Event.customer_id, Event.occurred_at, Event.data).where(
            Event.type == "nps_response", *within(Event.occurred_at)
        )
    ).all()
    latest: dict[str, tuple[Any, int]] = {}
    for cid, at, data in nps:
        if cid not in latest or at >= latest[cid][0]:
            latest[cid] = (at, int(data["score"]))
    promoters = sum(score >= 9 for _, score in latest.values())

    sent_asks = s.execute(select(AskRow.customer_id, AskRow.program, AskRow.status).where(
        AskRow.sent_at.is_not(None), *within(AskRow.sent_at))).all()  # fmt: skip
    completed = _completed(s, within)
    completions = Counter(cid for cid, _ in completed)
    asked = {cid for cid, _, _ in sent_asks}

    referrals = Counter(s.scalars(select(ReferralRow.status).where(*within(ReferralRow.created_at))))
    amount_of = select(func.sum(ReferralRow.amount)).where(*within(ReferralRow.created_at))
    pipeline = s.scalar(amount_of.where(ReferralRow.status.in_(("opportunity", "won")))) or Decimal(0)
    revenue = s.scalar(amount_of.where(ReferralRow.status == "won")) or Decimal(0)
    clicks = s.scalar(select(func.count()).select_from(ReferralClick).where(*within(ReferralClick.clicked_at))) or 0
    rewards = {
        status: {"count": count, "amount": float(amount or 0)}
        for status, count, amount in s.execute(
            select(RewardRow.status, func.count(), func.sum(RewardRow.amount))
            .where(*within(RewardRow.created_at))
            .group_by(RewardRow.status)
        )
    }
    messages = s.execute(select(Message.customer_id).where(Message.status == "sent", *within(Message.sent_at)))
    touches = Counter(messages.scalars())
    total_referrals = sum(referrals.values())
    return {
        "window": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
        "customers": s.scalar(select(func.count()).select_from(Customer).where(*within(Customer.created_at))) or 0,
        "advocate_pool_size": len(completions),
        "promoter_rate": _ratio(promoters, len(latest)),
        "activities_per_advocate": _ratio(sum(completions.values()), len(completions)),
        "program_participation": _ratio(len(set(completions) & asked), len(asked)),
        "repeat_advocates": sum(1 for n in completions.values() if n >= 2),
        "advocate_retention": _retention(s, until or datetime.now(timezone.utc), retention_days),
        "asks_by_status": dict(Counter(status for _, _, status in sent_asks)),
        "programs": _by_program(sent_asks, completed),
        "referral_link_clicks": clicks,
        "referral_leads": total_referrals,
        "referral_leads_per_click": _ratio(total_referrals, clicks),
        "referrals_by_status": dict(referrals),
        "referral_conversion_rate": _ratio(referrals.get("won", 0), total_referrals),
        "referral_pipeline": float(pipeline),
        "referral_revenue": float(revenue),
        "rewards_by_status": rewards,
        "emails_sent": sum(touches.values()),
        "advocacy_touches_per_customer": _ratio(sum(touches.values()), len(touches)),
    }


def _completed(session: Session, within: _Window) -> Sequence[Any]:
    """(customer_id, program) of every activity completed in the window."""
    return session.execute(select(AskRow.customer_id, AskRow.program).where(
        AskRow.status == "completed", *within(AskRow.completed_at))).all()  # fmt: skip


def _by_program(sent_asks: Sequence[Any], completed: Sequence[Any]) -> dict[str, dict[str, Any]]:
    sent = Counter(program for _, program, _ in sent_asks)
    declined = Counter(program for _, program, status in sent_asks if status == "declined")
    done = Counter(program for _, program in completed)
    return {
        p: {
            "asks_sent": sent[p],
            "completed": done[p],
            "declined": declined[p],
            "completion_rate": _ratio(done[p], sent[p]),
        }
        for p in PROGRAMS
        if sent[p] or done[p]
    }


def _retention(session: Session, end: datetime, days: int) -> dict[str, Any]:
    """Of the advocates who completed an activity in the period before last, the share who did again in the last."""
    period = timedelta(days=days)
    previous = _Window(session, end - 2 * period, end - period)
    current = _Window(session, end - period, end)

    before = {cid for cid, _ in _completed(session, previous)}
    retained = before & {cid for cid, _ in _completed(session, current)}
    return {"period_days": days, "previous_period_advocates": len(before), "retained": len(retained),
            "rate": _ratio(len(retained), len(before))}  # fmt: skip


def program_report(
    database_url: str,
    since: datetime | None = None,
    until: datetime | None = None,
    retention_days: int = 90,
) -> dict[str, Any]:
    with database(database_url) as sessions, sessions() as session:
        return build_report(session, since, until, retention_days)
