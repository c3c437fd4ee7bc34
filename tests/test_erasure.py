"""The right to erasure: after `forget`, no PII of the customer remains, the ledger keeps its amounts."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.sqltypes import JSON

from client.events import new_event
from client.journeys import forget_referee
from storage.erasure import anonymous_id, emails_of, erase_rows, placeholder_email
from storage.event_log import record_events
from storage.models import Base, RewardRow
from storage.referral_notes import save_referral_notes
from storage.stories import save_story
from storage.suppressions import suppress, suppression_for
from tests.conftest import Harness
from tests.outbox import ledger
from workflows.events import parse_event


def everything_in(sessions: sessionmaker[Session]) -> str:
    """Every text and JSON value in every table, as one string to search."""
    values: list[Any] = []
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in session.execute(select(*columns)):
                values += list(row)
    return json.dumps(values, default=str)


async def test_erasing_rows_leaves_no_pii_and_keeps_the_ledger(harness: Harness) -> None:
    """The database side (the time-skipping server cannot delete histories: the CLI test on the dev server does)."""
    h, c = harness, harness.cid("forget")
    email, name, company = f"{c}@acme-{c}.test", "Ada Lovelace", "Analytical Engines"
    await h.profile(c, name=name, company=company, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10, "comment": "Ada's private opinion"})
    await h.sleep(days=3)
    await h.send(c, "review_submitted", {"site": "g2", "rating": 5})
    await h.sleep(hours=1)
    await h.send(c, "referral_submitted", {"referee_email": "grace@hopper.test", "referee_name": "Grace"})
    await h.sleep(hours=1)
    # Another advocate referred Ada (her address, name and company in their event and journey), and she
    # unsubscribed.
    adv = h.cid("advocate")
    await h.profile(adv, name="Grace Hopper", company="Navy")
    referral = {"referee_email": email.upper(), "referee_name": name, "referee_company": company}
    await h.send(adv, "referral_submitted", referral)
    with h.sessions.begin() as session:
        record_events(session, [parse_event(new_event(adv, "referral_submitted", referral))])
        suppress(session, reason="unsubscribed", source="one-click unsubscribe link", customer_id=c)
    await h.sleep(hours=1)
    assert (await h.state(adv)).referrals[0].referee_name == name
    # Ada told a story on a case-study ask's page; Grace's referral of Ada carries a role and a note for sales.
    now = await h.now()
    save_story(h.sessions, c, "case_study-1", {"challenge": "Ada's story: nine days", "change": "x", "results": "4",
               "quote": "Ada's quote", "interview_time": "Ada's Tuesdays"}, True, now)  # fmt: skip
    save_referral_notes(h.sessions, adv, (await h.state(adv)).referrals[0].referral_id, email, "Ada's role",
                        "Ada's note for sales", now)  # fmt: skip
    before = ledger(h.sessions, c)
    assert before and (h.outbox / "deliveries.jsonl").exists()
    everything = everything_in(h.sessions)
    assert email in everything and name in everything and c in everything  # the test can see PII when it is there

    await h.client.get_workflow_handle(f"advocacy-{c}").terminate(reason="right to erasure")
    emails = emails_of(h.sessions, c)
    report = erase_rows(h.sessions, c, h.outbox)
    assert report.rows["customers"] == 1 and report.files_removed >= 3
    assert report.referred_by == [adv] and report.rows["referral_events"] == 1
    assert await forget_referee(h.client, adv, emails, placeholder_email(c)) == "1 referral(s) scrubbed"
    kept = (await h.state(adv)).referrals[0]
    assert (kept.referee_email, kept.referee_name, kept.referee_company) == (placeholder_email(c), None, None)
    advocate_state = json.dumps(asdict(await h.state(adv)))
    assert all(secret not in advocate_state for secret in (email, email.upper(), name, company))
    with h.sessions() as session:  # she stays unmailable, by her address's hash alone
        assert suppression_for(session, customer_id="someone-new", to_email=email, template="ask_review")

    everything = everything_in(h.sessions)
    for secret in (c, email, name, company, "Ada's private opinion", "Ada's story", "Ada's quote", "Ada's Tuesdays",
                   "Ada's role", "Ada's note"):  # fmt: skip
        assert secret not in everything, secret
    for path in h.outbox.iterdir():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert c not in text and email not in text, path
    with h.sessions() as session:
        after = session.scalars(select(RewardRow).where(RewardRow.customer_id == anonymous_id(c))).all()
        assert sorted((r.reward_id, r.amount, r.status) for r in after) == sorted(
            (r.reward_id, r.amount, r.status) for r in before
        )
    # Idempotent: a second run finds nothing left to do.
    again = erase_rows(h.sessions, c, h.outbox)
    assert again.rows == {} and again.files_removed == 0


def test_forget_on_an_unknown_customer_is_harmless(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    report = erase_rows(sessions, "nobody", tmp_path)
    assert report.rows == {} and report.anonymous_id == anonymous_id("nobody")
