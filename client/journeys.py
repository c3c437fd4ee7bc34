"""The Python client for backend systems and ops: send events, read and steer journeys."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.events import event_to_dict, parse_event
from workflows.journey import AdvocacyJourney
from workflows.model import (
    LATEST_RUNS,
    SA_NPS,
    SA_SCORE,
    SA_STAGE,
    SA_TIER,
    SIGNAL_EVENT,
    STAGES,
    ForgetRefereeInput,
    JourneyInput,
    JourneyState,
    workflow_id_for,
)


class JourneyEndedError(Exception):
    """The customer's journey is closed: it completed (the customer churned), or it was terminated, failed or
    timed out and has lost its state. Either way it takes no more events until an operator restores it."""


async def send_event(client: Client, raw: Any, task_queue: str) -> str:
    """Validate one event and deliver it by signal-with-start; returns the workflow id.

    Raises workflows.events.EventError (naming the field) before anything is sent,
    and JourneyEndedError for a customer whose journey has ended.
    """
    event = parse_event(raw)
    workflow_id = workflow_id_for(event.customer_id)
    for attempt in range(_TRANSITION_RETRIES + 1):
        try:
            await _signal_with_start(client, event, workflow_id, task_queue)
            return workflow_id
        except (WorkflowAlreadyStartedError, RPCError) as err:
            # Refused in the instant a run continues as new (the next run is already, or about to be,
            # running): send it again. A journey that is really closed is refused, saying how it ended.
            status = await _latest_status(client, event.customer_id)
            if status in _IN_TRANSITION and attempt < _TRANSITION_RETRIES:
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            if isinstance(err, WorkflowAlreadyStartedError):
                raise JourneyEndedError(_why_closed(event.customer_id, status)) from None
            raise
    raise AssertionError("unreachable")


_TRANSITION_RETRIES = 3
_IN_TRANSITION = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)


async def _latest_status(client: Client, customer_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await handle(client, customer_id).describe()).status
    except RPCError:
        return None


def _why_closed(customer_id: str, status: WorkflowExecutionStatus | None) -> str:
    """What ops need to know of a closed journey: how it ended, and what to do about it."""
    if status == WorkflowExecutionStatus.COMPLETED:
        return f"the journey of customer {customer_id} has ended (churned)"
    how = status.name.lower().replace("_", " ") if status is not None else "closed"
    return (
        f"the journey of customer {customer_id} was {how} and its state is lost; events are refused until an "
        f"operator restores it (python starter.py restore {customer_id})"
    )


async def _signal_with_start(client: Client, event: Any, workflow_id: str, task_queue: str) -> None:
    await client.start_workflow(
        AdvocacyJourney.run,
        JourneyInput(customer_id=event.customer_id),
        id=workflow_id,
        task_queue=task_queue,
        start_signal=SIGNAL_EVENT,
        start_signal_args=[event_to_dict(event)],
        # Search attributes and current details (who the journey is for: name, company, customer id) are set by
        # each run's first task; only the static summary has to come from here. It names what is known whatever
        # event comes first, the customer id, and stays true: the server uses it only when this call starts the
        # journey, and keeps it on the first run alone (a continued run has none). It is sent with every event,
        # as the start input is: about 70 bytes of a ~500-byte request.
        static_summary=f"Advocacy journey of customer {event.customer_id}",
        # A churned journey completed on purpose, and a terminated one lost what it knew (an opt-out among it):
        # neither is restarted empty by a late event.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


class RestoreError(Exception):
    """The journey cannot be restored: it is running, or its last run's history is gone."""


async def restore_journey(client: Client, customer_id: str, task_queue: str) -> JourneyState:
    """Start a closed journey again from the state its last run had reached (read by replaying that run's
    history), as a continue-as-new would; the caller then redelivers the events refused meanwhile."""
    closed = handle(client, customer_id)
    try:
        status = (await closed.describe()).status
    except RPCError as err:
        raise RestoreError(f"no journey for customer {customer_id!r}: {err.message}") from None
    if status == WorkflowExecutionStatus.RUNNING:
        raise RestoreError(f"the journey of customer {customer_id!r} is running: nothing to restore")
    try:
        state = await closed.query(AdvocacyJourney.query_state)
    except (RPCError, WorkflowQueryFailedError) as err:
        raise RestoreError(f"the last run of {customer_id!r} cannot be read back: {err}") from None
    await client.start_workflow(
        AdvocacyJourney.run,
        JourneyInput(customer_id=customer_id, state=state),
        id=workflow_id_for(customer_id),
        task_queue=task_queue,
        static_summary=f"Advocacy journey of customer {customer_id} (restored)",
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return state


async def forget_referee(client: Client, advocate_id: str, emails: set[str], placeholder: str) -> str:
    """Scrub an erased customer's address from the journey of an advocate who referred them."""
    try:
        scrubbed = await handle(client, advocate_id).execute_update(
            AdvocacyJourney.forget_referee, ForgetRefereeInput(emails=sorted(emails), placeholder=placeholder)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return "no running journey"
        raise
    return f"{scrubbed} referral(s) scrubbed"


def handle(client: Client, customer_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id_for(customer_id))


async def get_state(client: Client, customer_id: str) -> JourneyState:
    return await handle(client, customer_id).query(AdvocacyJourney.query_state)


def state_dict(state: JourneyState) -> dict[str, Any]:
    return asdict(state)


async def list_journeys(client: Client, stage: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    query = LATEST_RUNS
    if stage:
        query += f' AND AdvocacyStage = "{stage}"'
    rows = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "status": wf.status.name if wf.status else None,
                "stage": attrs.get(SA_STAGE),
                "tier": attrs.get(SA_TIER),
                "score": attrs.get(SA_SCORE),
                "last_nps": attrs.get(SA_NPS),
            }
        )
    return rows


async def journeys_per_stage(client: Client) -> dict[str, int]:
    """How many journeys are in each stage now (visibility counts over each journey's latest run)."""
    counts = await asyncio.gather(
        *(client.count_workflows(f'{LATEST_RUNS} AND AdvocacyStage = "{stage}"') for stage in STAGES)
    )
    return {stage: c.count for stage, c in zip(STAGES, counts, strict=True)}


async def end_journey(client: Client, customer_id: str) -> str:
    """Right to erasure: end the journey and delete every run's history (they hold the customer's events)."""
    handle = client.get_workflow_handle(workflow_id_for(customer_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return "not found"
        raise
    if description.status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate(reason="right to erasure")
    # Delete every run, newest first along the continue-as-new chain: histories hold the customer's events.
    deleted, run_id = 0, description.run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id_for(customer_id), run_id=run_id).fetch_history()
        previous = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        request = DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id_for(customer_id), run_id=run_id),
        )
        try:
            await client.workflow_service.delete_workflow_execution(request)
            deleted += 1
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        run_id = previous
    return f"ended; {deleted} run(s) deleted"
