"""The customer's preferences in the policy: how often they are asked, programs they skip, a pause that
ends on its date. Pure policy (property tests over any event sequence) and the `set_preferences` rules."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_policy_properties import PB, START, OldCode, _run_due, simulate, step
from workflows import policy
from workflows.events import iso, parse_event, parse_timestamp
from workflows.model import PROGRAMS, JourneyState, Preferences, Profile
from workflows.policy import Policy, every_fix, plan_ask, preferences_refusal, set_preferences
from workflows.schedule import next_business_time

# A promoter with a moment of delight every few days for months: the playbook alone asks every 3 weeks.
_KEEN: list[tuple[float, tuple[str, dict[str, Any]], int]] = [
    (24.0 * 5, ("nps_response", {"score": 10}), i) for i in range(60)
]
_KEEN[3:3] = [(1.0, ("review_submitted", {"site": "g2", "rating": 5}), 0)]
_KEEN[12:12] = [(1.0, ("referral_submitted", {"referee_email": "a@x.co"}), 0)]


def _created(state: JourneyState) -> list[Any]:
    return sorted(parse_timestamp(a.created_at) for a in state.asks)


def test_without_preferences_the_playbook_asks_every_three_weeks() -> None:
    """Guards the tests below against passing vacuously: the same events ask often without a preference."""
    gaps = [b - a for a, b in pairwise(_created(simulate(_KEEN)))]
    assert len(gaps) >= 3 and min(gaps) < timedelta(days=30)


@pytest.mark.parametrize(("frequency", "days"), [("monthly", 30), ("quarterly", 90)])
def test_a_chosen_frequency_spaces_the_asks(frequency: str, days: int) -> None:
    state = simulate(_KEEN, preferences=Preferences(frequency=frequency))
    created = _created(state)
    assert len(created) >= 2, state.ask_outlook
    assert all(b - a >= timedelta(days=days) for a, b in pairwise(created))
    # Journeys recorded before the preferences existed had none: the old code never reads them.
    assert _created(simulate(_KEEN, patched=OldCode(), preferences=Preferences(frequency=frequency))) == _created(
        simulate(_KEEN)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step, max_size=30),
    st.sampled_from(["program", "monthly", "quarterly"]),
    st.sets(st.sampled_from(PROGRAMS), max_size=3),
)
def test_no_sequence_asks_more_often_than_chosen_or_for_a_skipped_program(
    steps: list[Any], frequency: str, skip: set[str]
) -> None:
    state = simulate(steps, preferences=Preferences(frequency=frequency, skip_programs=sorted(skip)))
    days = {"program": 0, "monthly": 30, "quarterly": 90}[frequency]
    for a, b in pairwise(_created(state)):
        assert b - a >= timedelta(days=days)
    assert not [a.program for a in state.asks if a.program in skip]


def test_skipped_programs_are_never_asked_and_the_ladder_goes_on() -> None:
    state = simulate(_KEEN, preferences=Preferences(skip_programs=["referral"]))
    programs = [a.program for a in state.asks]
    assert programs and "referral" not in programs and "review" in programs
    everything = simulate(_KEEN, preferences=Preferences(skip_programs=list(PROGRAMS)))
    outlook = plan_ask(everything, Policy(playbook=PB, now=START + timedelta(days=300), patched=every_fix)).why
    assert everything.asks == [] and outlook == "not asking: the customer is interested in none of the programs"


def _event(kind: str, at: Any, event_id: str, **data: Any) -> Any:
    return parse_event({"event_id": event_id, "customer_id": "c-1", "type": kind, "occurred_at": iso(at), "data": data})


def _promoter(now: Any) -> tuple[JourneyState, Policy]:
    """A promoter whose review ask went out (and is still open) within days of their NPS answer."""
    ctx = Policy(playbook=PB, now=now, patched=every_fix)
    state = JourneyState(customer_id="c-1")
    log: list[policy.Effect] = []
    profile = {"email": "ada@acme.co", "name": "Ada", "company": "Acme", "segment": "enterprise"}
    for kind, data in (("customer_profile", profile), ("nps_response", {"score": 10})):
        log += policy.apply_event(state, ctx, _event(kind, now, kind, **data))
    _run_due(state, ctx, now + timedelta(days=4), log)
    assert [(a.program, a.status) for a in state.asks] == [("review", "sent")]
    return state, ctx


def test_a_pause_cancels_the_open_ask_and_ends_on_its_date_then_asks_resume() -> None:
    state, _ = _promoter(START)
    ask_sent = parse_timestamp(state.asks[0].created_at)
    now = ask_sent + timedelta(days=1)
    ctx = Policy(playbook=PB, now=now, patched=every_fix)
    until = now + timedelta(days=60)
    changed, effects = set_preferences(state, ctx, Preferences(paused_until=iso(until)))
    assert changed and [type(e) for e in effects] == [policy.RecordAsk]
    assert state.asks[0].status == "cancelled" and state.preferences.paused_until == iso(until)
    assert plan_ask(state, ctx).why == f"not asking: paused by the customer until {iso(until)}"
    # The same preferences again change nothing twice.
    assert set_preferences(state, ctx.at(now + timedelta(hours=1)), Preferences(paused_until=iso(until))) == (False, [])
    # The journey's timer wakes it on the pause's last moment: that is the next thing due.
    assert policy.next_wake(state, ctx) == (until, "the customer's pause ends")
    # Delight during the pause asks nothing.
    log: list[policy.Effect] = []
    for day in range(5, 60, 5):
        at = now + timedelta(days=day)
        event = {"event_id": f"n{day}", "customer_id": "c-1", "type": "nps_response", "occurred_at": iso(at),
                 "data": {"score": 10}}  # fmt: skip
        _run_due(state, ctx, at, log)
        ctx = ctx.at(at)
        log += policy.apply_event(state, ctx, parse_event(event))
        log += policy.advance(state, ctx)
    assert len(state.asks) == 1 and not [e for e in log if isinstance(e, policy.SendEmail)]
    # The pause ends on its date (no event needed) and the next ask follows within business days.
    _run_due(state, ctx, until + timedelta(days=5), log)
    assert state.preferences.paused_until is None
    assert [a.program for a in state.asks] == ["review", "review"], state.ask_outlook
    assert until <= parse_timestamp(state.asks[1].created_at) < until + timedelta(days=4)


def test_the_outlook_says_when_the_chosen_frequency_allows_the_next_ask() -> None:
    state, _ = _promoter(START)
    sent = parse_timestamp(state.asks[0].created_at)
    ctx = Policy(playbook=PB, now=sent + timedelta(days=2), patched=every_fix)
    set_preferences(state, ctx, Preferences(frequency="quarterly"))
    policy.apply_event(state, ctx, _event("review_submitted", ctx.now, "r", site="g2", rating=5))  # on to referral
    # A fresh moment near the end of the quarter: the ask waits for the customer's 90 days, not the budget's 21.
    later = ctx.at(sent + timedelta(days=85))
    later_event = {"event_id": "n2", "customer_id": "c-1", "type": "nps_response", "occurred_at": iso(later.now),
                   "data": {"score": 10}}  # fmt: skip
    policy.apply_event(state, later, parse_event(later_event))
    outlook = plan_ask(state, later).why
    quarter = next_business_time(sent + timedelta(days=90), None, PB.business_hours)  # a Sunday: the Monday
    assert outlook == f"the customer chose quarterly: next ask from {iso(quarter)} (referral)"


@pytest.mark.parametrize(
    ("frequency", "skip", "until", "error"),
    [
        ("weekly", [], None, "frequency: must be one of program, monthly, quarterly"),
        ("monthly", ["reviews"], None, "skip_programs: no such program: reviews"),
        ("monthly", "review", None, "skip_programs: must be a list of program names"),
        ("monthly", [], "next tuesday", "paused_until: not an ISO 8601 timestamp"),
        ("monthly", [], "2028-01-01T00:00:00Z", "paused_until: at most 366 days ahead"),
    ],
)
def test_preferences_the_journey_cannot_take_are_refused_naming_the_field(
    frequency: Any, skip: Any, until: Any, error: str
) -> None:
    assert preferences_refusal(frequency, skip, until, START, PROGRAMS) == error


def test_a_pause_already_over_is_no_pause() -> None:
    state = JourneyState(customer_id="c-1", profile=Profile(email="ada@acme.co"))
    ctx = Policy(playbook=PB, now=START, patched=every_fix)
    assert preferences_refusal("program", [], iso(START - timedelta(days=1)), START, PROGRAMS) is None
    changed, _ = set_preferences(state, ctx, Preferences(paused_until=iso(START - timedelta(days=1))))
    assert not changed and state.preferences == Preferences()
