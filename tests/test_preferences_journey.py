"""Preferences in a running journey (time-skipping): the `set_preferences` Update, a pause that ends on its
date by a durable timer, a quarterly customer asked once in 90 days, and preferences carried into a new run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from client.journeys import handle
from tests.conftest import Harness
from tests.outbox import templates_sent
from workflows.events import iso, parse_timestamp
from workflows.journey import AdvocacyJourney
from workflows.model import JourneyInput, JourneyState, Preferences, Profile, SetPreferencesInput, workflow_id_for


async def test_a_customer_pauses_for_a_month_then_is_asked_quarterly_without_referrals(harness: Harness) -> None:
    h, c = harness, harness.cid("prefs")
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    first = (await h.state(c)).asks
    assert [(a.program, a.status) for a in first] == [("review", "sent")]

    journey = handle(h.client, c)
    for bad, words in (
        (SetPreferencesInput(frequency="weekly"), "frequency: must be one of program, monthly, quarterly"),
        (SetPreferencesInput(skip_programs=["reviews"]), "skip_programs: no such program: reviews"),
        (SetPreferencesInput(paused_until="soon"), "paused_until: not an ISO 8601 timestamp"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await journey.execute_update(AdvocacyJourney.set_preferences, bad)
        assert words in str(err.value.cause)
    until = iso(await h.now() + timedelta(days=30))
    wanted = SetPreferencesInput(frequency="quarterly", skip_programs=["referral"], paused_until=until)
    result = await journey.execute_update(AdvocacyJourney.set_preferences, wanted)
    assert result.changed and result.preferences.paused_until == until
    again = await journey.execute_update(AdvocacyJourney.set_preferences, wanted)
    assert not again.changed and again.preferences == result.preferences  # the same twice: nothing twice
    state = await h.state(c)
    assert state.asks[0].status == "cancelled" and state.asks[0].error == f"paused by the customer until {until}"
    assert state.ask_outlook == f"not asking: paused by the customer until {until}"

    # Delight during the pause asks nothing, and no reminder follows the cancelled ask.
    await h.sleep(days=10)
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=10)
    assert len((await h.state(c)).asks) == 1 and templates_sent(h.sessions, c) == ["ask_review"]

    # The pause ends on its date with no event; the customer chose quarterly, so the next ask waits 90 days.
    await h.sleep(days=12)
    state = await h.state(c)
    assert state.preferences.paused_until is None
    assert state.ask_outlook is not None and "the customer chose quarterly: next ask from" in state.ask_outlook
    await h.sleep(days=45)
    await h.send(c, "nps_response", {"score": 10})  # day ~80: a fresh moment before the quarter is up
    await h.sleep(days=20)
    state = await h.state(c)
    assert [a.program for a in state.asks] == ["review", "review"], state.ask_outlook
    gap = parse_timestamp(state.asks[1].created_at) - parse_timestamp(state.asks[0].created_at)
    assert gap >= timedelta(days=90)
    assert "referral" not in [a.program for a in state.asks]


async def test_preferences_carried_into_a_new_run_still_hold(harness: Harness) -> None:
    """As after continue-as-new: the new run starts with the customer's pause, and asks nothing until it ends."""
    h, c = harness, harness.cid("prefsrun")
    now = await h.now()
    carried = JourneyState(
        customer_id=c,
        profile=Profile(email=f"{c}@acme.test", name="Ada", company="Acme", timezone="UTC", segment="enterprise"),
        preferences=Preferences(paused_until=iso(now + timedelta(days=20)), updated_at=iso(now)),
        started_at=iso(now),
    )
    await h.client.start_workflow(
        AdvocacyJourney.run, JourneyInput(customer_id=c, state=carried), id=workflow_id_for(c), task_queue=h.task_queue
    )
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=5)
    state = await h.state(c)
    assert state.asks == [] and state.ask_outlook.startswith("not asking: paused by the customer until")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=10)
    await h.send(c, "nps_response", {"score": 10})  # the moment that the pause's end lets through
    await h.sleep(days=10)
    state = await h.state(c)
    assert [a.program for a in state.asks] == ["review"], state.ask_outlook
    assert parse_timestamp(state.asks[0].created_at) >= now + timedelta(days=20)
