"""The demo ends with a summary a person reads in a glance (its JSON behind --json)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import starter
from cli.demo import format_summary
from storage.reports import build_report

NEXT = {
    "Web UI, every journey": "http://localhost:8233/namespaces/default/workflows?query=CustomerId+STARTS_WITH+%22demo%22",
    "HTTP API docs": "http://127.0.0.1:8000/docs (write key demo-write-key)",
    "Emails to open": "var/outbox",
    "One journey": "python starter.py state demo140000-000",
    "All the KPIs, as JSON": "python starter.py report --since 2026-11-28T14:00:00Z",
}


def _summary(sessions: sessionmaker[Session], **kpis: Any) -> dict[str, Any]:
    with sessions() as session:  # the KPIs' shape as the database report builds it
        report = build_report(session)
    report.update(kpis)
    return {
        "period": {"since": "2026-11-28T14:00:00Z", "until": "2026-11-28T14:01:45Z", "simulated_days": 100,
                   "seconds_per_day": 1.0},
        "journeys": 60,
        "journeys_per_stage": {"listening": 14, "qualified": 18, "engaged": 9, "advocate": 7, "champion": 2,
                               "at_risk": 4, "opted_out": 4, "churned": 2},
        "asks_by_program": {"review": {"sent": 31, "completed": 4, "declined": 0},
                            "referral": {"sent": 12, "completed": 3, "declined": 0},
                            "advisory_board": {"sent": 2, "completed": 1, "declined": 1}},
        "asks_by_status": {"sent": 20, "reminded": 19, "completed": 8, "declined": 1},
        "rewards_by_status": {"issued": {"count": 5, "amount": 425.0}, "pending": {"count": 1, "amount": 250.0}},
        "referrals": {"submitted": 2, "opportunity": 1, "lost": 1},
        "currency": "USD",
        "program_kpis": report,
    }  # fmt: skip


def test_the_summary_reads_in_a_glance_with_where_to_look_next(sessions: sessionmaker[Session]) -> None:
    summary = _summary(sessions, referral_pipeline=12000.0, referral_revenue=0.0, referral_conversion_rate=0.0,
                       promoter_rate=0.4523, advocate_pool_size=7, emails_sent=81)  # fmt: skip
    text = format_summary(summary, NEXT)
    lines = text.splitlines()
    assert len(lines) <= 25, text  # the JSON it replaces ran to ~100 lines
    assert (
        lines[0] == "=== Demo summary: 60 customers, 100 simulated days (2026-11-28 14:00-14:01 UTC, 1 day = 1 s) ==="
    )
    stages = "listening 14 · qualified 18 · engaged 9 · advocate 7 · champion 2 · at risk 4 · opted out 4 · churned 2"
    assert f"Journeys by stage   {stages}" in lines
    assert "  review              31 / 4 / 0" in lines
    assert "  referral            12 / 3 / 0" in lines
    assert "  advisory board       2 / 1 / 1" in lines
    assert "Rewards             issued 5 (USD 425) · pending 1 (USD 250)" in lines
    assert "Referral leads      4: submitted 2 · opportunity 1 · lost 1 · conversion 0%" in lines
    assert "Pipeline / revenue  USD 12,000 / USD 0" in lines
    assert "Program             promoter rate 45% · advocates 7 · emails sent 81" in lines
    where = lines[lines.index("Where to look next") + 1 :]
    assert len(where) == len(NEXT)
    for (what, link), line in zip(NEXT.items(), where, strict=True):
        assert line.startswith(f"  {what}:") and line.endswith(link)


def test_an_empty_outcome_still_reads(sessions: sessionmaker[Session]) -> None:
    summary = _summary(sessions)
    summary.update(asks_by_program={}, rewards_by_status={}, referrals={})
    lines = format_summary(summary, NEXT).splitlines()
    assert "  (none yet)" in lines
    assert "Rewards             none" in lines
    assert "Referral leads      0 · conversion n/a" in lines
    assert "Pipeline / revenue  USD 0 / USD 0" in lines
    assert "Program             promoter rate n/a · advocates 0 · emails sent 0" in lines


def test_the_demo_prints_json_only_when_asked() -> None:
    assert starter.parser().parse_args(["demo", "--exit", "--customers", "50"]).json is False
    args = starter.parser().parse_args(["demo", "--exit", "--customers", "50", "--json"])
    assert args.json is True and args.exit and args.customers == 50
