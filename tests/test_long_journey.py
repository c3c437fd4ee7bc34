"""A 24-month journey with hundreds of events across several continue-as-new runs keeps its state."""

from __future__ import annotations

import random
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import Harness
from workflows.events import iso
from workflows.journey import AdvocacyJourney
from workflows.model import JourneyInput, workflow_id_for


async def test_two_years_across_continue_as_new(harness: Harness) -> None:
    h, c = harness, harness.cid("long")
    rng = random.Random(3)
    # A small history bound so the two years span several runs.
    await h.client.start_workflow(
        AdvocacyJourney.run,
        JourneyInput(customer_id=c, max_history_length=250),
        id=workflow_id_for(c),
        task_queue=h.task_queue,
    )
    await h.profile(c, segment="enterprise")
    sent_ids: list[str] = []
    for week in range(104):
        for n in range(3):
            choices: list[tuple[str, dict[str, Any]]] = [
                ("usage_milestone", {"milestone": f"m{week}"}),
                ("csat_response", {"score": 5}),
                ("support_resolved", {"ticket_id": f"t{week}{n}", "satisfied": True}),
                ("nps_response", {"score": 10}),
            ]
            kind, data = rng.choice(choices)
            event_id = f"w{week}-{n}"
            sent_ids.append(event_id)
            await h.send(c, kind, data, event_id=event_id)
        if week % 13 == 5:
            await h.send(c, "review_submitted", {"site": f"site{week}", "rating": 5}, event_id=f"review-{week}")
            sent_ids.append(f"review-{week}")
        await h.sleep(days=7)
    before = await h.state(c)
    # Duplicates of events applied in earlier runs change nothing.
    for event_id in sent_ids[:20]:
        await h.send(c, "nps_response", {"score": 0}, event_id=event_id)
    await h.sleep(hours=1)
    state = await h.state(c)
    assert state.runs >= 3, state.runs
    assert state.events_applied == len(sent_ids) + 1 == before.events_applied
    assert state.last_nps == 10 and state.stage != "at_risk"
    assert state.referral_code == before.referral_code and state.started_at == before.started_at
    assert state.completed.get("review", 0) == 8
    assert len(state.asks) >= 8 and all(a.created_at >= state.started_at for a in state.asks)
    desc = await h.client.get_workflow_handle(workflow_id_for(c)).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert iso(await h.now()) > state.asks[-1].created_at
