"""The journey state has a size budget: filled to every bound, it still fits one Temporal payload."""

from __future__ import annotations

from plumbing.converter import data_converter
from tests.test_policy_properties import PB, START, OldCode, simulate
from workflows.events import TEXT_LIMITS, iso
from workflows.model import Ask, JourneyState, Profile, Referral, Reward, ScoreEntry
from workflows.policy.budget import (
    MAX_COMPLETION_KEYS_KEPT,
    MAX_REFERRALS_KEPT,
    STATE_BUDGET_BYTES,
    event_key,
)
from workflows.policy.scoring import MAX_REASON

YEARS = 10


def _text(field: str) -> str:
    return "x" * TEXT_LIMITS[field]


def _size(state: JourneyState) -> int:
    (payload,) = data_converter().payload_converter.to_payloads([state])
    return payload.ByteSize()


def test_a_state_filled_to_every_bound_fits_the_budget() -> None:
    """Every list at its bound, every text at its longest: ten years of the fastest asking the playbook allows."""
    at = iso(START)
    email = "a" * (TEXT_LIMITS["email"] - 7) + "@ex.com"
    asks = int(YEARS * 365 * 86400 / PB.ask_min_gap_seconds) + 1
    state = JourneyState(
        customer_id="c" * 128,
        profile=Profile(email=email, name=_text("name"), company=_text("company"), timezone=_text("timezone"),
                        locale=_text("locale"), segment=_text("segment"), plan=_text("plan"), updated_at=at),
        score_log=[ScoreEntry(at=at, event_type="usage_milestone", delta=5, reason="r" * MAX_REASON)
                   for _ in range(PB.max_signals_kept)],
        seen_event_ids=[event_key(f"{n:0200d}") for n in range(PB.max_event_ids_kept)],
        asks=[Ask(ask_id=f"advisory_board-{n}", program="advisory_board", status="cancelled", created_at=at,
                  sent_at=at, reminded_at=at, completed_at=at, closed_at=at, clicked_at=at, error="e" * 300)
              for n in range(asks)],
        referrals=[Referral(referral_id=f"ref-{n:012d}", referee_email=email, status="won", submitted_at=at,
                            referee_name=_text("referee_name"), referee_company=_text("referee_company"),
                            amount=1e12, currency="USD", updated_at=at) for n in range(MAX_REFERRALS_KEPT)],
        # A referral reward and a referee incentive per kept referral, plus one per completed ask.
        rewards=[Reward(reward_id=f"referral-ref-{n:012d}-referee", program="referral", amount=1e6, currency="USD",
                        status="void", kind="gift_card", beneficiary="referee", referral_id=f"ref-{n:012d}",
                        created_at=at, hold_until=at, void_reason="v" * 300)
                 for n in range(2 * MAX_REFERRALS_KEPT + asks)],
        completion_keys=[f"case_study:{'k' * 200}{n}" for n in range(MAX_COMPLETION_KEYS_KEPT)],
        nps_history=[10] * 12,
        completed={p: 10**6 for p in ("review", "referral", "reference", "case_study", "speaking", "advisory_board")},
        last_completed_at={p: at for p in ("review", "referral", "reference", "case_study", "speaking")},
        last_error="e" * 500, last_rejection="r" * 300, email_undeliverable="u" * 200,
    )  # fmt: skip
    assert _size(state) < STATE_BUDGET_BYTES, f"{_size(state)} bytes"


def test_a_long_stream_of_maximal_events_keeps_the_state_within_its_bounds() -> None:
    """Through the real policy: two years of daily referrals, case studies and milestones, every text maximal."""
    steps = []
    for day in range(730):
        referee = f"{day:05d}" + "r" * (TEXT_LIMITS["referee_email"] - 18) + "@example.com"
        referral = {"referee_email": referee, "referee_name": _text("referee_name"),
                    "referee_company": _text("referee_company")}  # fmt: skip
        steps += [
            (24.0, ("referral_submitted", referral), day),
            (0.0, ("usage_milestone", {"milestone": _text("milestone")}), day),
            (0.0, ("case_study_published", {"notes": _text("notes")}), day),
        ]
    # simulate() names events f"{type}-{bucket}": every day's events are new.
    state = simulate(steps)
    assert len(state.referrals) == MAX_REFERRALS_KEPT
    assert len(state.completion_keys) <= MAX_COMPLETION_KEYS_KEPT
    assert state.events_applied == 1 + 3 * 730
    assert _size(state) < STATE_BUDGET_BYTES // 2
    # Journeys recorded before the budget keep every referral (their replays must): the bound is the change.
    assert len(simulate(steps, patched=OldCode()).referrals) == 730
