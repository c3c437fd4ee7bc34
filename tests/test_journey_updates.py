"""Updates: pause / resume / opt-out / submit referral / churn, with validators refusing bad input."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from temporalio.client import WorkflowUpdateFailedError

from client.journeys import JourneyEndedError, handle
from plumbing.config import DEFAULT_PLAYBOOK
from tests.conftest import Harness, running_worker
from tests.outbox import messages, templates_sent
from workflows.journey import AdvocacyJourney
from workflows.model import AnswerAskInput, ChurnInput, OptOutInput, PauseInput, SubmitReferralInput


async def test_pause_holds_asks_and_resume_releases_them(harness: Harness) -> None:
    h, c = harness, harness.cid("pause")
    await h.profile(c, segment="enterprise")
    await h.sleep(hours=1)
    status = await handle(h.client, c).execute_update(AdvocacyJourney.pause, PauseInput(reason="exec escalation"))
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
            await journey.execute_update(AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email=bad))
        assert words in str(err.value.cause)
    # Longer than the referrals table keeps: refused naming the field, never kept in state to fail its record.
    for long in (SubmitReferralInput(referee_email="sam@prospect.example", referee_name="n" * 201),
                 SubmitReferralInput(referee_email="sam@prospect.example", referee_company="c" * 201)):  # fmt: skip
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await journey.execute_update(AdvocacyJourney.submit_referral, long)
        assert "at most 200 characters" in str(err.value.cause)
    result = await journey.execute_update(
        AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email="pat@prospect.example", referee_name="Pat")
    )
    assert result.referral_id.startswith("ref-") and result.status == "submitted"
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await journey.execute_update(
            AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email="pat@prospect.example")
        )
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
    status = await journey.execute_update(AdvocacyJourney.opt_out, OptOutInput(reason="asked by phone"))
    assert status.opted_out and status.stage == "opted_out"
    with pytest.raises(WorkflowUpdateFailedError):
        await journey.execute_update(AdvocacyJourney.resume, PauseInput())
    await journey.execute_update(AdvocacyJourney.churn, ChurnInput(reason="contract ended"))
    final = await journey.result()
    assert final["stage"] == "churned" and final["asks"][0]["status"] == "cancelled"
    with pytest.raises(JourneyEndedError):
        await h.send(c, "nps_response", {"score": 10})


async def test_a_free_mail_advocate_may_refer_someone_on_the_same_free_mail(harness: Harness) -> None:
    """The API let an advocate at gmx.de refer another gmx.de address (a shared mail domain says nothing
    about who works where); the journey's shorter list then refused it, after the click was counted."""
    h, c = harness, harness.cid("gmx")
    await h.profile(c, email="ada@gmx.de")
    await h.sleep(hours=1)
    result = await handle(h.client, c).execute_update(
        AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email="bob@gmx.de")
    )
    assert result.status == "submitted"


async def test_referrals_on_a_free_mail_domain_by_event_and_by_update(harness: Harness) -> None:
    """The referral paths changed behind `shared-free-mail-list` and `submit-referral-direct` (recorded)."""
    h, c = harness, harness.cid("freemail")
    await h.profile(c, email="ada@gmx.de")
    await h.send(c, "referral_submitted", {"referee_email": "bob@gmx.de"})
    await h.sleep(hours=1)
    result = await handle(h.client, c).execute_update(
        AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email="pat@prospect.example")
    )
    assert result.status == "submitted"
    await h.sleep(hours=1)
    state = await h.state(c)
    assert [r.referee_email for r in state.referrals] == ["bob@gmx.de", "pat@prospect.example"]


async def test_submit_referral_with_a_long_update_id_answers(harness: Harness) -> None:
    """It used to feed a synthetic event with `update-<update id>` as event_id and wait to see it applied; an
    update id that pushed event_id past its 200 characters was rejected as an event, so the update never finished."""
    h, c = harness, harness.cid("longid")
    await h.profile(c)
    await h.sleep(hours=1)
    result = await asyncio.wait_for(
        handle(h.client, c).execute_update(
            AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email="pat@prospect.example"), id="u" * 220
        ),
        timeout=30,
    )
    assert result.status == "submitted"


async def test_fifteen_referrals_at_once_respect_the_daily_cap_and_one_referee_once(harness: Harness) -> None:
    """15 parallel submissions were all accepted against a daily cap of 5 (only the API counted, racing)."""
    h, c = harness, harness.cid("burst")
    await h.profile(c, email="ada@acme.example")
    await h.sleep(hours=1)
    journey = handle(h.client, c)

    async def submit(email: str) -> str:
        try:
            result = await journey.execute_update(
                AdvocacyJourney.submit_referral, SubmitReferralInput(referee_email=email)
            )
            return result.status
        except WorkflowUpdateFailedError as err:
            return str(err.cause)

    answers = await asyncio.gather(*(submit(f"p{n}@prospect{n}.example") for n in range(15)))
    assert answers.count("submitted") == 5, answers
    assert all("more than 5 referrals per advocate per day" in a for a in answers if a != "submitted")
    assert len((await h.state(c)).referrals) == 5
    # The same mailbox spelt differently, at once: one referral.
    await h.sleep(days=1)
    spellings = ("Kim.Lee@gmail.com", "kimlee+x@googlemail.com", "kim.lee@gmail.com.")
    answers = await asyncio.gather(*(submit(email) for email in spellings))
    assert answers.count("submitted") == 1 and sum("already referred" in a for a in answers) == 2, answers


async def test_a_reference_accepted_on_the_page_completes_once_and_tells_the_team(harness: Harness) -> None:
    """A promoter accepts their reference ask on their page, then clicks again: completed, thanked and the team
    told once."""
    raw = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    raw["programs"]["reference"].update(effort=1, min_completed=0)
    playbook = harness.outbox.parent / "playbook-reference-first.yaml"
    playbook.write_text(yaml.safe_dump(raw))
    async with running_worker(harness.env, harness.outbox.parent / "accept", harness.sessions, playbook) as h:
        c = harness.cid("accept")
        await h.profile(c, segment="enterprise")
        await h.send(c, "nps_response", {"score": 10})
        await h.sleep(days=3)
        (ask,) = (await h.state(c)).asks
        assert (ask.program, ask.status) == ("reference", "sent")
        journey = handle(h.client, c)
        first = await journey.execute_update(
            AdvocacyJourney.answer_ask, AnswerAskInput(ask_id=ask.ask_id, accepted=True)
        )
        again = await journey.execute_update(
            AdvocacyJourney.answer_ask, AnswerAskInput(ask_id=ask.ask_id, accepted=True)
        )
        assert (first.status, first.changed, again.changed) == ("completed", True, False)
        await h.sleep(hours=1)
        assert (await h.state(c)).completed == {"reference": 1}
        assert templates_sent(h.sessions, c).count("thank_you") == 1
        # The team is told, once, at its own address (a customer's opt-out never stops a team_* email).
        team = [m for m in messages(h.sessions, c) if m.template == "team_accepted"]
        assert [(m.to_email, m.ask_id) for m in team] == [("advocacy-team@example.com", ask.ask_id)]
        assert "accepted" in team[0].subject and "reference" in team[0].text
