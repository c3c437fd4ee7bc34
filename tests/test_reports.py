"""Program KPIs from a ledger whose every figure is known (SQLite always, PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

import starter
from storage.models import AskRow, Customer, Event, Message, ReferralClick, ReferralRow, RewardRow
from storage.reports import ReportError, build_report, parse_bound


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


JULY, OCTOBER = at("2026-07-01"), at("2026-10-01")


def _ask(cid: str, ask_id: str, program: str, status: str, sent: str | None, done: str | None = None) -> AskRow:
    created = at(sent) if sent else at("2026-01-15")
    return AskRow(customer_id=cid, ask_id=ask_id, program=program, status=status, created_at=created,
                  sent_at=at(sent) if sent else None, completed_at=at(done) if done else None, updated_at=created)  # fmt: skip


def _message(n: int, cid: str, status: str, sent: str | None) -> Message:
    return Message(idempotency_key=f"k{n}", customer_id=cid, template="ask_review", locale="en", to_email="x@y.test",
                   subject="s", html="h", text="t", status=status, provider="local", created_at=at("2026-01-15"),
                   sent_at=at(sent) if sent else None)  # fmt: skip


def _seed(session: Session) -> None:
    session.add_all(Customer(customer_id=c, created_at=at("2026-01-10"), updated_at=at("2026-01-10")) for c in "abcd")
    for n, (cid, score, day) in enumerate([("a", 9, "2026-02-01"), ("a", 6, "2026-08-01"), ("b", 10, "2026-08-02"),
                                           ("c", 8, "2026-08-03")]):  # fmt: skip
        session.add(Event(event_id=f"nps{n}", customer_id=cid, type="nps_response", occurred_at=at(day),
                          received_at=at(day), data={"score": score}))  # fmt: skip
    session.add_all([
        _ask("a", "a1", "review", "completed", "2026-05-01", "2026-05-03"),
        _ask("a", "a2", "referral", "completed", "2026-08-01", "2026-08-05"),
        _ask("b", "b1", "review", "completed", "2026-05-10", "2026-05-12"),
        _ask("b", "b2", "referral", "declined", "2026-08-10"),
        _ask("c", "c1", "review", "completed", "2026-08-15", "2026-08-16"),
        _ask("c", "c2", "reference", "cancelled", "2026-09-01"),
        _ask("d", "d1", "review", "scheduled", None),
    ])  # fmt: skip
    for rid, status, amount, day in [("r1", "won", 1000, "2026-08-06"), ("r2", "opportunity", 500, "2026-08-07"),
                                     ("r3", "lost", 200, "2026-08-08")]:  # fmt: skip
        session.add(ReferralRow(customer_id="a", referral_id=rid, referee_email=f"{rid}@prospect.test", status=status,
                                amount=Decimal(amount), currency="USD", created_at=at(day), updated_at=at(day)))  # fmt: skip
    for n, day in enumerate(["2026-08-01", "2026-08-02", "2026-08-03", "2026-08-04", "2026-10-05"]):
        session.add(ReferralClick(code="AAAA", customer_id="a", visitor=f"v{n}", day=day, clicked_at=at(day)))
    for cid, rid, status, amount, day in [("a", "a1", "issued", 10, "2026-05-03"), ("a", "a2", "pending", 30, "2026-08-06"),
                                          ("b", "b1", "void", 10, "2026-05-12")]:  # fmt: skip
        session.add(RewardRow(customer_id=cid, reward_id=rid, program="review", beneficiary="advocate", kind="credit",
                              amount=Decimal(amount), currency="USD", status=status, created_at=at(day)))  # fmt: skip
    sends = [("a", "sent", "2026-05-01"), ("a", "sent", "2026-05-03"), ("a", "sent", "2026-08-01"),
             ("b", "sent", "2026-05-10"), ("c", "sent", "2026-08-15"), ("c", "sent", "2026-09-01"),
             ("c", "failed", None), ("d", "sent", "2026-10-02")]  # fmt: skip
    session.add_all(_message(n, cid, status, day) for n, (cid, status, day) in enumerate(sends))


@pytest.fixture
def seeded(db: sessionmaker[Session]) -> sessionmaker[Session]:
    with db.begin() as session:
        _seed(session)
    return db


def test_everything_before_october(seeded: sessionmaker[Session]) -> None:
    with seeded() as session:
        report = build_report(session, until=OCTOBER)
    expected: dict[str, Any] = {
        "customers": 4,
        "advocate_pool_size": 3,  # a, b, c completed something
        "promoter_rate": 0.333,  # latest answers: a 6, b 10, c 8
        "activities_per_advocate": 1.333,
        "program_participation": 1.0,  # everyone asked acted at least once
        "repeat_advocates": 1,
        "asks_by_status": {"completed": 4, "declined": 1, "cancelled": 1},  # d's ask was never sent
        "programs": {
            "review": {"asks_sent": 3, "completed": 3, "declined": 0, "completion_rate": 1.0},
            "referral": {"asks_sent": 2, "completed": 1, "declined": 1, "completion_rate": 0.5},
            "reference": {"asks_sent": 1, "completed": 0, "declined": 0, "completion_rate": 0.0},
        },
        "referral_link_clicks": 4,  # the October click is after the window
        "referral_leads": 3,
        "referral_leads_per_click": 0.75,
        "referrals_by_status": {"won": 1, "opportunity": 1, "lost": 1},
        "referral_conversion_rate": 0.333,
        "referral_pipeline": 1500.0,
        "referral_revenue": 1000.0,
        "rewards_by_status": {
            "issued": {"count": 1, "amount": 10.0},
            "pending": {"count": 1, "amount": 30.0},
            "void": {"count": 1, "amount": 10.0},
        },
        "emails_sent": 6,
        "advocacy_touches_per_customer": 2.0,
    }
    assert {k: report[k] for k in expected} == expected
    # May's advocates were a and b; of them only a acted again in the 90 days before October.
    assert report["advocate_retention"] == {
        "period_days": 90,
        "previous_period_advocates": 2,
        "retained": 1,
        "rate": 0.5,
    }


def test_a_window_counts_only_what_happened_in_it(seeded: sessionmaker[Session]) -> None:
    with seeded() as session:
        summer = build_report(session, since=JULY, until=OCTOBER)
        spring = build_report(session, until=JULY, retention_days=30)
    assert summer["window"] == {"since": "2026-07-01T00:00:00+00:00", "until": "2026-10-01T00:00:00+00:00"}
    assert summer["customers"] == 0 and summer["advocate_pool_size"] == 2 and summer["repeat_advocates"] == 0
    assert summer["program_participation"] == 0.667  # a and c acted; b declined
    assert summer["asks_by_status"] == {"completed": 2, "declined": 1, "cancelled": 1}
    assert summer["rewards_by_status"] == {"pending": {"count": 1, "amount": 30.0}}
    assert summer["emails_sent"] == 3
    assert spring["promoter_rate"] == 1.0  # only a's 9 in February
    assert spring["advocate_pool_size"] == 2 and spring["referral_leads"] == 0
    assert spring["referral_leads_per_click"] is None and spring["referral_conversion_rate"] is None
    # 30-day periods before July: a and b acted in May (2 May - 1 June), neither again in June.
    assert spring["advocate_retention"] == {
        "period_days": 30,
        "previous_period_advocates": 2,
        "retained": 0,
        "rate": 0.0,
    }
    assert summer["advocate_retention"]["rate"] == 0.5


def test_bad_report_arguments_are_named(seeded: sessionmaker[Session]) -> None:
    with seeded() as session:
        with pytest.raises(ReportError, match="must be before --until"):
            build_report(session, since=OCTOBER, until=JULY)
        with pytest.raises(ReportError, match="--retention-days must be at least 1"):
            build_report(session, retention_days=0)
    with pytest.raises(ReportError, match="--since: 'last week' is not an ISO 8601"):
        parse_bound("--since", "last week")
    assert parse_bound("--until", "2026-10-01T02:00:00+02:00") == at("2026-10-01")


def test_report_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic import command

    from storage.db import alembic_config

    url = f"sqlite:///{tmp_path / 'r.db'}"
    command.upgrade(alembic_config(url), "head")
    monkeypatch.setenv("DATABASE_URL", url)
    assert starter.main(["report", "--since", "2026-07-01", "--until", "2026-13-01"]) == 2
    assert "--until: '2026-13-01' is not an ISO 8601" in capsys.readouterr().err
    assert starter.main(["report", "--until", "2026-10-01"]) == 0
    assert '"advocate_pool_size": 0' in capsys.readouterr().out
