"""Updates: pause / resume / opt-out / submit referral / churn, with validators refusing bad input."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError

from journeys import JourneyEndedError, handle
from tests.conftest import Harness
from tests.outbox import templates_sent
from workflows.journey import AdvocacyJourney
from workflows.model import ChurnInput, OptOutInput, PauseInput, SubmitReferralInput


async def test_pause_holds_asks_and_resume_releases_them(harness: Harness) -> None:
    h, c = harness, harness.cid("pause")
    await h.profile(c, segment="enterprise")
    await h.sleep(hours=1)
    status = await handle(h.client, c).execute_update(AdvocacyJourney.pause, PauseInput("exec escalation"))
    assert status.paused
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=5)
    assert (await h.state(c)).asks == []
    await handle(h.client, c).execute_update(AdvocacyJourney.resume, PauseInput())
    await h.sleep(days=3)
    assert [a.status for a in (await h.state(c)).asks] == ["sent"]


async def test_submit_referral_validates_before_history(harness: Harness) -> None:
    h, c = harness, harness.cid("refer")
    await h.profile(c, email="ada@acme.example")
    await h.sleep(hours=1)
    journey = handle(h.client, c)
    for bad, words in (
        ("not-an-email", "not an email"),
        ("ada@acme.example", "self-referral"),
        ("bob@acme.example", "own company domain"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await journey.execute_update(AdvocacyJourney.submit_referral, SubmitReferralInput(bad))
        assert words in str(err.value.cause)
    result = await journey.execute_update(
        AdvocacyJourney.submit_referral, SubmitReferralInput("pat@prospect.example", "Pat")
    )
    assert result.referral_id.startswith("ref-") and result.status == "submitted"
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await journey.execute_update(AdvocacyJourney.submit_referral, SubmitReferralInput("pat@prospect.example"))
    assert "already referred" in str(err.value.cause)
    await h.sleep(hours=1)
    state = await h.state(c)
    assert [r.referee_email for r in state.referrals] == ["pat@prospect.example"]
    assert templates_sent(h.sessions, c) == ["thank_you"]
    history = await journey.fetch_history()
    rejected = [e for e in history.events if e.HasField("workflow_execution_update_rejected_event_attributes")]
    assert rejected == []  # refused by validators: nothing written to history


async def test_opt_out_and_churn_end_asks_and_the_journey(harness: Harness) -> None:
    h, c = harness, harness.cid("churn")
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    journey = handle(h.client, c)
    status = await journey.execute_update(AdvocacyJourney.opt_out, OptOutInput("asked by phone"))
    assert status.opted_out and status.stage == "opted_out"
    with pytest.raises(WorkflowUpdateFailedError):
        await journey.execute_update(AdvocacyJourney.resume, PauseInput())
    await journey.execute_update(AdvocacyJourney.churn, ChurnInput("contract ended"))
    final = await journey.result()
    assert final["stage"] == "churned" and final["asks"][0]["status"] == "cancelled"
    with pytest.raises(JourneyEndedError):
        await h.send(c, "nps_response", {"score": 10})
