"""Ops see whose journey they are looking at in the Web UI, whatever event arrived first and in every run of
the continue-as-new chain (the real dev server: the time-skipping server keeps no user metadata).

The static summary is fixed at start and a continued run has none, so it names what is known at start (the
customer id); the current details, set by every run, name the customer, the company and the id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from client.events import new_event
from client.journeys import get_state, handle, send_event
from plumbing.config import DEFAULT_PLAYBOOK, Settings
from tests.conftest import start_dev_env
from worker import WorkerParts, build_worker

pytestmark = pytest.mark.devserver
GRACE = {"email": "grace@navy.example", "name": "Grace Hopper", "company": "Navy"}


@pytest.fixture
async def short_history_env() -> AsyncIterator[WorkflowEnvironment]:
    # The server suggests continue-as-new after 40 history events, so a few events reach a second run.
    env = await start_dev_env(
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"]
    )
    yield env
    await env.shutdown()


async def _details(env: WorkflowEnvironment, customer: str) -> str:
    metadata = await handle(env.client, customer).query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.3)


async def test_every_journey_shows_who_it_is_for_whatever_arrives_first_and_after_continue_as_new(
    short_history_env: WorkflowEnvironment, tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    env = short_history_env
    queue = f"labels-{uuid.uuid4().hex[:6]}"
    nps_first, profile_first = f"nps-{uuid.uuid4().hex[:6]}", f"prof-{uuid.uuid4().hex[:6]}"
    parts = WorkerParts(sessions, DEFAULT_PLAYBOOK, tmp_path / "outbox")
    async with build_worker(env.client, queue, parts, Settings.from_env()):
        await send_event(env.client, new_event(nps_first, "nps_response", {"score": 9}), queue)
        await send_event(env.client, new_event(profile_first, "customer_profile", GRACE), queue)
        await send_event(env.client, new_event(profile_first, "nps_response", {"score": 9}), queue)
        # Every journey's summary reads the same way, whatever arrived first: nothing in it goes stale.
        for customer in (nps_first, profile_first):
            summary = await (await handle(env.client, customer).describe()).static_summary()
            assert summary == f"Advocacy journey of customer {customer}"

        async def details_say(customer: str, *texts: str) -> bool:
            details = await _details(env, customer)
            return all(text in details for text in texts)

        # Before its profile arrives, a journey is known by its customer id.
        await _eventually(lambda: details_say(nps_first, nps_first, "no profile yet"))
        await send_event(env.client, new_event(nps_first, "customer_profile", GRACE), queue)
        await _eventually(lambda: details_say(nps_first, "Grace Hopper · Navy", nps_first))

        # Continued runs have no static summary (the server keeps it on the first run only): the details carry
        # who the journey is for, set again by the new run.
        for n in range(40):
            if (await get_state(env.client, nps_first)).runs >= 2:
                break
            milestone = new_event(nps_first, "usage_milestone", {"milestone": f"m-{n}"})
            await send_event(env.client, milestone, queue)
        await _eventually(lambda: _continued(env, nps_first))
        latest = await handle(env.client, nps_first).describe()
        assert latest.run_id != latest.raw_description.workflow_execution_info.first_run_id
        assert await latest.static_summary() is None
        await _eventually(lambda: details_say(nps_first, "Grace Hopper · Navy", nps_first))
        assert "Grace Hopper · Navy" in await _details(env, profile_first)


async def _continued(env: WorkflowEnvironment, customer: str) -> bool:
    return (await get_state(env.client, customer)).runs >= 2
