"""Time-skipping scenarios over months, asserting what the customer and the company see."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from client.events import new_event
from plumbing.config import DEFAULT_PLAYBOOK
from tests.conftest import Harness, running_worker
from tests.outbox import ledger, messages, templates_sent
from workflows.events import parse_timestamp
from workflows.journey import AdvocacyJourney
from workflows.model import SIGNAL_EVENT, JourneyInput, workflow_id_for


async def test_full_promoter_path_to_advisory_board(harness: Harness) -> None:
    h, c = harness, harness.cid("promoter")
    await h.profile(c, segment="enterprise", timezone="Europe/Berlin")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert state.stage == "engaged" and state.tier == "bronze"
    assert [(a.program, a.status) for a in state.asks] == [("review", "sent")]
    invite = messages(h.sessions, c)[0]
    assert invite.template == "ask_review" and invite.to_email == f"{c}@acme-{c}.test"
    assert "utm_campaign=review" in invite.html and "Unsubscribe" in invite.html
    sent_local = parse_timestamp(state.asks[0].sent_at).astimezone(ZoneInfo("Europe/Berlin"))
    assert sent_local.weekday() < 5 and 9 <= sent_local.hour < 17, "asks go out in the customer's business hours"

    await h.send(c, "review_submitted", {"site": "g2", "rating": 5})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.stage == "advocate"
    assert state.asks[0].status == "completed"
    assert [(r.program, r.amount, r.status) for r in state.rewards] == [("review", 25.0, "issued")]
    assert templates_sent(h.sessions, c) == ["ask_review", "thank_you", "reward_notice"]
    assert [(r.reward_id, r.status, r.amount) for r in ledger(h.sessions, c)] == [
        ("review-site-g2", "issued", Decimal("25.00"))
    ]

    # A completed rung leads to the next one as soon as the ask budget allows: referral, three weeks on.
    await h.sleep(days=20)
    await h.send(c, "usage_milestone", {"milestone": "1000 projects"})
    await h.sleep(days=3)
    state = await h.state(c)
    assert [(a.program, a.status) for a in state.asks][-1] == ("referral", "sent")
    assert parse_timestamp(state.asks[-1].created_at) - parse_timestamp(state.asks[0].created_at) < timedelta(days=24)
    referral_mail = messages(h.sessions, c)[-1]
    assert referral_mail.template == "ask_referral" and state.referral_code in referral_mail.text
    await h.send(c, "referral_submitted", {"referee_email": "grace@hopper.test", "referee_name": "Grace"})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.asks[-1].status == "completed" and state.referrals[0].status == "submitted"

    # Renewal + promoter NPS: silver tier; the reference ask follows the referral within the budget, and
    # its completion makes a champion.
    await h.sleep(days=18)
    await h.send(c, "renewal", {"contract_value": 50000, "term_months": 12})
    await h.send(c, "nps_response", {"score": 9})
    await h.sleep(days=3)
    state = await h.state(c)
    assert state.tier in ("silver", "gold")
    assert state.asks[-1].program == "reference" and state.asks[-1].status == "sent"
    await h.send(c, "reference_completed", {"notes": "great call"})
    await h.sleep(hours=2)
    state = await h.state(c)
    assert state.stage == "champion"
    team = [m for m in messages(h.sessions, c) if m.template == "team_champion"]
    assert len(team) == 1 and team[0].to_email == "advocacy-team@example.com"

    # The advisory-board invitation follows at the next good moment the ask budget allows.
    await h.sleep(days=21)
    await h.send(c, "social_mention", {"url": "https://x.test/1", "sentiment": "positive"})
    await h.sleep(days=4)
    state = await h.state(c)
    assert state.asks[-1].program == "advisory_board"
    await h.send(c, "advisory_board_response", {"accepted": True})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.asks[-1].status == "completed"
    assert state.completed == {"review": 1, "referral": 1, "reference": 1, "advisory_board": 1}
    created = [parse_timestamp(a.created_at) for a in state.asks]
    assert all(b - a >= timedelta(days=21) for a, b in pairwise(created))


async def test_detractor_backs_off_and_recovers(harness: Harness) -> None:
    h, c = harness, harness.cid("detractor")
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    assert (await h.state(c)).asks[0].status == "sent"
    await h.send(c, "nps_response", {"score": 3, "comment": "slow support"})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.stage == "at_risk" and state.asks[0].status == "cancelled"
    assert state.last_nps == 3
    # A month of good news does not end the cooldown early...
    await h.send(c, "csat_response", {"score": 5})
    await h.sleep(days=30)
    state = await h.state(c)
    assert state.stage == "at_risk" and len(state.asks) == 1
    # ...and after the cooldown, with positive signals since, the journey recovers and may ask again.
    await h.sleep(days=31)
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert state.stage != "at_risk"
    assert len(state.asks) == 2 and state.asks[1].status == "sent"
    assert templates_sent(h.sessions, c) == ["ask_review", "ask_review"]


async def test_no_answer_reminds_once_then_declines_and_steps_down(harness: Harness) -> None:
    h, c = harness, harness.cid("silent")
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    await h.sleep(days=8)
    state = await h.state(c)
    assert state.asks[0].status == "reminded"
    await h.sleep(days=8)
    state = await h.state(c)
    assert state.asks[0].status == "declined"
    assert templates_sent(h.sessions, c) == ["ask_review", "reminder"]
    # During the cooldown nothing is asked, even at a good moment; review (the lowest rung) is not re-asked.
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=20)
    assert len((await h.state(c)).asks) == 1


async def test_unsubscribe_mid_ask_stops_everything_but_tracking(harness: Harness) -> None:
    h, c = harness, harness.cid("unsub")
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    await h.send(c, "unsubscribed", {"reason": "too many emails"})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.opted_out and state.stage == "opted_out"
    assert state.asks[0].status == "cancelled"
    await h.send(c, "nps_response", {"score": 10})
    await h.send(c, "usage_milestone", {"milestone": "api"})
    await h.sleep(days=40)
    state = await h.state(c)
    assert state.events_applied == 5 and len(state.asks) == 1
    assert templates_sent(h.sessions, c) == ["ask_review"]


async def test_duplicate_and_out_of_order_events(harness: Harness) -> None:
    h, c = harness, harness.cid("dupes")
    now = await h.now()

    await h.profile(c)
    await h.send(c, "nps_response", {"score": 9}, event_id="nps-new", at=now)
    await h.send(c, "nps_response", {"score": 9}, event_id="nps-new", at=now)
    # An older detractor answer arriving late neither becomes last_nps nor puts the journey at risk.
    await h.send(c, "nps_response", {"score": 2}, event_id="nps-old", at=now - timedelta(days=30))
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.events_applied == 3
    assert state.last_nps == 9 and state.stage != "at_risk"
    assert state.seen_event_ids.count("nps-new") == 1


async def test_referral_reward_pending_then_approved_or_void(harness: Harness) -> None:
    h, c = harness, harness.cid("referrer")
    await h.profile(c)
    await h.send(c, "referral_submitted", {"referee_email": "a@one.test"})
    await h.send(c, "referral_submitted", {"referee_email": "b@two.test"})
    await h.sleep(hours=1)
    state = await h.state(c)
    a, b = state.referrals
    await h.send(
        c, "referral_converted", {"referral_id": a.referral_id, "stage": "won", "amount": 20000, "currency": "USD"}
    )
    await h.send(c, "referral_converted", {"referee_email": "b@two.test", "stage": "won", "amount": 100})
    await h.sleep(hours=1)
    state = await h.state(c)
    amounts = {(r.reward_id.split("-")[0], r.referral_id): (r.amount, r.status) for r in state.rewards}
    assert amounts[("referral", a.referral_id)] == (600.0, "pending")  # 3 % of 20,000 beats $10
    assert amounts[("referral", b.referral_id)] == (10.0, "pending")  # $10 beats 3 % of 100
    assert amounts[("referee", a.referral_id)] == (50.0, "pending")  # double-sided
    # b is refunded inside the hold: void. a passes the hold: approved, then issued.
    await h.sleep(days=10)
    await h.send(c, "referral_converted", {"referral_id": b.referral_id, "stage": "lost"})
    await h.sleep(days=25)
    rows = {(r.reward_id): r.status for r in ledger(h.sessions, c)}
    assert rows[f"referral-{a.referral_id}"] == "issued" and rows[f"referee-{a.referral_id}"] == "issued"
    assert rows[f"referral-{b.referral_id}"] == "void" and rows[f"referee-{b.referral_id}"] == "void"
    notices = [m for m in messages(h.sessions, c) if m.template == "reward_notice"]
    assert len(notices) == 1 and "600.00 USD" in notices[0].text


async def test_annual_reward_cap(harness: Harness) -> None:
    h, c = harness, harness.cid("capped")
    await h.profile(c)
    for i in range(3):
        email = f"p{i}@big{i}.test"
        await h.send(c, "referral_submitted", {"referee_email": email})
        await h.send(c, "referral_converted", {"referee_email": email, "stage": "won", "amount": 20000})
    await h.sleep(hours=1)
    state = await h.state(c)
    advocate = [r.amount for r in state.rewards if r.beneficiary == "advocate"]
    assert advocate == [600.0, 400.0] and sum(advocate) == 1000.0  # third is over the cap: none


async def test_a_repeated_win_after_the_cap_gives_the_referee_incentive_once(harness: Harness) -> None:
    """Found by the property test: with the annual cap used up there is no advocate reward, and a second
    "won" for the same referral (a CRM re-sending the deal) used to add the referee's incentive again."""
    h, c = harness, harness.cid("capwin")
    await h.profile(c)
    await h.send(c, "referral_converted", {"referee_email": "big@one.test", "stage": "won", "amount": 40000})
    for _ in range(2):  # two deliveries of the same win, with different event ids
        await h.send(c, "referral_converted", {"referee_email": "small@two.test", "stage": "won", "amount": 0})
    await h.sleep(hours=1)
    state = await h.state(c)
    ids = [r.reward_id for r in state.rewards]
    assert len(ids) == len(set(ids)) == 3  # the first win's two rewards, and the second's incentive once
    assert [r.amount for r in state.rewards if r.beneficiary == "advocate"] == [1000.0]  # the cap
    assert sorted(r.reward_id for r in ledger(h.sessions, c)) == sorted(ids)


async def test_a_review_on_the_same_site_without_an_ask_counts_once(harness: Harness) -> None:
    """Found by the property test: a second unsolicited review on the same site counted as another
    activity (towards the ladder and champion) and asked for a thank-you the outbox then dropped."""
    h, c = harness, harness.cid("twice")
    await h.profile(c)
    for _ in range(2):  # the platform re-sends it, or the customer edits it: a new event id each time
        await h.send(c, "review_submitted", {"site": "G2", "rating": 5})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.completed == {"review": 1} and [r.reward_id for r in state.rewards] == ["review-site-g2"]
    assert any("review already counted (site-g2)" in s.reason for s in state.score_log)
    assert sorted(m.template for m in messages(h.sessions, c)) == ["reward_notice", "thank_you"]  # one each


async def test_a_second_advisory_board_acceptance_counts_once(harness: Harness) -> None:
    """An advisory-board acceptance re-sent by the CRM (a new event id, no open ask) counts once. The fix
    reached this path only when the policy was given `workflow.patched` on every call (issue 9, item 1)."""
    h, c = harness, harness.cid("seat")
    await h.profile(c)
    for _ in range(2):
        await h.send(c, "advisory_board_response", {"accepted": True})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.completed == {"advisory_board": 1}
    assert any("advisory_board already counted (seat)" in s.reason for s in state.score_log)
    assert templates_sent(h.sessions, c).count("thank_you") == 1


async def test_a_reminder_that_would_fall_after_hours_waits_for_the_next_opening(harness: Harness) -> None:
    """With `reminder_after: 36h` every reminder's plain due time lands between 21:00 and 05:00; the
    journey sends it at the next opening instead (a week's delay does the same across a clock change)."""
    playbook = harness.outbox.parent / "playbook-36h.yaml"
    playbook.write_text(re.sub(r"(?m)^reminder_after: \S+", "reminder_after: 36h", DEFAULT_PLAYBOOK.read_text()))
    async with running_worker(harness.env, harness.outbox.parent / "36h", harness.sessions, playbook) as h:
        c = harness.cid("remind")
        await h.profile(c, segment="enterprise")  # timezone UTC: open 09:00-17:00, Monday to Friday
        await h.send(c, "nps_response", {"score": 10})
        await h.sleep(days=6)
        (ask,) = (await h.state(c)).asks
        sent, reminded = parse_timestamp(ask.sent_at), parse_timestamp(ask.reminded_at)
        assert reminded >= sent + timedelta(hours=36)
        assert reminded.weekday() < 5 and reminded.hour == 9 and reminded.minute == 0, reminded


async def test_text_over_its_bound_is_refused_by_the_journey(harness: Harness) -> None:
    """An event signalled straight to Temporal, past the API, meets the same bounds: state stays in budget."""
    h, c = harness, harness.cid("oversized")
    for type, data in (
        ("customer_profile", {"email": f"{c}@acme.test", "name": "N" * 5000, "company": "Acme"}),
        ("usage_milestone", {"milestone": "m" * 5000}),
    ):
        await h.client.start_workflow(
            AdvocacyJourney.run,
            JourneyInput(customer_id=c),
            id=workflow_id_for(c),
            task_queue=h.task_queue,
            start_signal=SIGNAL_EVENT,
            start_signal_args=[new_event(c, type, data, at=await h.now())],
        )
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert state.rejected_events == 2
    assert state.last_rejection == "data.milestone: at most 200 characters (got 5000)"
    assert state.profile.name == "Ada Lovelace"
    assert all(len(entry.reason) < 300 for entry in state.score_log)
    assert [(a.program, a.status) for a in state.asks] == [("review", "sent")]


async def test_a_journey_the_server_ended_is_not_restarted_empty(harness: Harness) -> None:
    """A terminated run (e.g. the server's history limits) loses its state: later events are refused, visibly,
    instead of starting a journey that has forgotten the customer unsubscribed."""
    from client.journeys import JourneyEndedError, RestoreError, handle, restore_journey

    h, c = harness, harness.cid("ended")
    await h.profile(c, segment="enterprise")
    await h.send(c, "unsubscribed", {"reason": "no more email"})
    await h.sleep(hours=1)
    await handle(h.client, c).terminate("history size exceeded")
    with pytest.raises(JourneyEndedError, match="terminated"):
        await h.profile(c, segment="enterprise")
    with pytest.raises(JourneyEndedError, match="restore"):
        await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    assert messages(h.sessions, c) == []

    # Restored from the state its last run reached: the opt-out holds.
    restored = await restore_journey(h.client, c, h.task_queue)
    assert restored.opted_out and restored.profile.email
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert state.opted_out and state.runs == 2 and state.last_nps == 10
    assert messages(h.sessions, c) == []
    with pytest.raises(RestoreError, match="running"):
        await restore_journey(h.client, c, h.task_queue)


async def test_an_unsubscribe_the_journey_never_heard_of_still_stops_its_asks(harness: Harness) -> None:
    """The suppression list, not journey state, decides: the ask fails visibly and nothing is sent."""
    from storage.suppressions import suppress

    h, c = harness, harness.cid("suppressed")
    with h.sessions.begin() as session:
        suppress(session, reason="unsubscribed", source="one-click unsubscribe link", customer_id=c)
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert not state.opted_out  # the journey never heard of it
    assert [(a.program, a.status) for a in state.asks] == [("review", "cancelled")]
    assert "is suppressed (unsubscribed, from one-click unsubscribe link)" in (state.asks[0].error or "")
    assert [(m.template, m.status) for m in messages(h.sessions, c)] == [("ask_review", "suppressed")]
    assert not (h.outbox / "deliveries.jsonl").exists() or c not in (h.outbox / "deliveries.jsonl").read_text()


async def test_a_won_deal_in_yen_without_a_rate_holds_the_advocate_reward(harness: Harness) -> None:
    """30,000 JPY (about 200 USD) used to earn a 900 USD reward: 3 % of the yen, paid as dollars."""
    h, c = harness, harness.cid("yen")
    await h.profile(c)
    await h.send(c, "referral_submitted", {"referee_email": "kenji@tokyo.test"})
    await h.send(c, "referral_converted", {"referee_email": "kenji@tokyo.test", "stage": "won", "amount": 30000,
                                           "currency": "JPY"})  # fmt: skip
    await h.sleep(hours=1)
    state = await h.state(c)
    assert [(r.beneficiary, r.amount) for r in state.rewards] == [("referee", 50.0)]
    assert "no rate for JPY into USD" in state.score_log[-1].reason
    assert [r.reward_id.split("-")[0] for r in ledger(h.sessions, c)] == ["referee"]


async def test_a_journey_keeps_its_latest_referrals_within_the_state_budget(harness: Harness) -> None:
    """Past the bound the oldest referrals leave the state (the referrals table keeps them all)."""
    from workflows.policy.budget import MAX_REFERRALS_KEPT

    h, c = harness, harness.cid("budget")
    await h.profile(c)
    for n in range(MAX_REFERRALS_KEPT + 5):
        if n and n % 5 == 0:
            await h.sleep(days=1)  # within the daily cap
        await h.send(c, "referral_submitted", {"referee_email": f"p{n}@prospect{n}.test"})
    await h.sleep(hours=1)
    state = await h.state(c)
    assert len(state.referrals) == MAX_REFERRALS_KEPT
    assert state.referrals[0].referee_email == "p5@prospect5.test"


async def test_a_promoter_without_segment_or_plan_is_asked_for_a_review_within_days(harness: Harness) -> None:
    """NPS 10, two milestones and a resolved ticket: the delight is fresh, the review ask goes out."""
    h, c = harness, harness.cid("nosegment")
    await h.profile(c)  # email, name, company, time zone: no segment, no plan
    await h.send(c, "nps_response", {"score": 10})
    await h.send(c, "usage_milestone", {"milestone": "first dashboard"})
    await h.send(c, "usage_milestone", {"milestone": "ten users"})
    await h.send(c, "support_resolved", {"ticket_id": "T-1", "satisfied": True})
    await h.sleep(days=3)
    state = await h.state(c)
    assert [(a.program, a.status) for a in state.asks] == [("review", "sent")], state.ask_outlook
    assert state.ask_outlook == "waiting for the answer to the review ask (sent)"


async def test_a_champion_without_segment_or_plan_gets_the_advisory_board_invitation(harness: Harness) -> None:
    """Review, referral and reference completed with two promoter answers: a champion, whose next rung is
    the advisory board, within the ask budget."""
    h, c = harness, harness.cid("nosegchamp")
    await h.profile(c)
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    await h.send(c, "review_submitted", {"site": "g2", "rating": 5})
    await h.sleep(days=30)
    await h.send(c, "usage_milestone", {"milestone": "1000 projects"})
    await h.sleep(days=3)
    await h.send(c, "referral_submitted", {"referee_email": "grace@hopper.test"})
    await h.sleep(days=30)
    await h.send(c, "nps_response", {"score": 9})
    await h.sleep(days=3)
    state = await h.state(c)
    assert [a.program for a in state.asks] == ["review", "referral", "reference"], state.ask_outlook
    await h.send(c, "reference_completed", {"notes": "great call"})
    await h.sleep(hours=2)
    assert (await h.state(c)).stage == "champion"
    await h.sleep(days=30)
    state = await h.state(c)
    advisory = [a for a in state.asks if a.program == "advisory_board"]
    assert advisory and advisory[0].sent_at, state.ask_outlook
    champion_at = parse_timestamp(state.last_completed_at["reference"])
    assert parse_timestamp(advisory[0].sent_at) - champion_at <= timedelta(days=21 + 3)  # the budget's gap
