"""`make bench`: ingest throughput against the platform's ceiling, and history size per customer-year.

1. On the local dev server, in one run: events/second through signal-with-start
   into AdvocacyJourney (worker on the default playbook, SQLite), against a bare
   workflow that only counts signals: the ratio is what the journey logic costs.
   Both are timed until every event is applied (checked by query), in five
   interleaved rounds; the medians are reported.
2. On the time-skipping server: one customer's reference year (24 events: 2 NPS,
   4 CSAT, 12 milestones, 4 support tickets, 1 renewal, 1 social mention) plus
   the asks, reminders and rewards the playbook makes of them; history events
   summed over all runs, and the largest single run.

Writes bench/results.json. Numbers are measured, never asserted in tests.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.counter import SignalCounter
from client.events import new_event
from client.journeys import get_state, send_event
from plumbing.config import DEFAULT_PLAYBOOK
from plumbing.converter import data_converter
from plumbing.entrypoint import exit_now
from storage.db import make_engine, make_sessionmaker
from storage.models import Base
from tests.conftest import start_dev_env
from worker import WorkerParts, build_worker
from workflows.events import iso
from workflows.model import workflow_id_for

BIN = Path(sys.executable).parent
CUSTOMERS = 80
EVENTS_PER_CUSTOMER = 25
CONCURRENCY = 32
ROUNDS = 5


def _events(prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("usage_milestone", {"milestone": "m"}),
        ("csat_response", {"score": 5}),
        ("nps_response", {"score": 9}),
    ]
    for c in range(CUSTOMERS):
        cid = f"{prefix}-{c}"
        out.append(new_event(cid, "customer_profile", {"email": f"{cid}@x.example", "name": "B", "company": "X"},
                             event_id=f"{cid}-p"))  # fmt: skip
        for n in range(EVENTS_PER_CUSTOMER - 1):
            kind, data = kinds[n % len(kinds)]
            out.append(new_event(cid, kind, data, event_id=f"{cid}-{n}"))
    return out


async def _pump(events: list[dict[str, Any]], send: Any) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for e in events:
        queue.put_nowait(e)

    async def worker() -> None:
        while not queue.empty():
            await send(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _until_applied(check: Any, customers: list[str]) -> None:
    pending = set(customers)
    while pending:
        done = await asyncio.gather(*(check(c) for c in pending))
        pending = {c for c, ok in zip(pending, done, strict=True) if not ok}
        if pending:
            await asyncio.sleep(0.05)


async def measure_baseline(client: Client, queue: str) -> float:
    prefix = f"base{uuid.uuid4().hex[:6]}"
    events = _events(prefix)

    async def send(e: dict[str, Any]) -> None:
        await client.start_workflow(SignalCounter.run, e["customer_id"], id=f"count-{e['customer_id']}", task_queue=queue,
                                    start_signal="customer_event", start_signal_args=[e])  # fmt: skip

    async def applied(cid: str) -> bool:
        n: int = await client.get_workflow_handle(f"count-{cid}").query(SignalCounter.applied)
        return n == EVENTS_PER_CUSTOMER

    async with Worker(client, task_queue=queue, workflows=[SignalCounter]):
        start = time.perf_counter()
        await _pump(events, send)
        await _until_applied(applied, [f"{prefix}-{c}" for c in range(CUSTOMERS)])
        elapsed = time.perf_counter() - start
    return len(events) / elapsed


async def measure_ingest(client: Client, queue: str, tmp: Path) -> float:
    prefix = f"ing{uuid.uuid4().hex[:6]}"
    events = _events(prefix)
    tmp.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    Base.metadata.create_all(engine)
    parts = WorkerParts(make_sessionmaker(engine), DEFAULT_PLAYBOOK, tmp / "outbox")

    async def applied(cid: str) -> bool:
        return (await get_state(client, cid)).events_applied == EVENTS_PER_CUSTOMER

    async with build_worker(client, queue, parts):
        start = time.perf_counter()
        await _pump(events, lambda e: send_event(client, e, queue))
        await _until_applied(applied, [f"{prefix}-{c}" for c in range(CUSTOMERS)])
        elapsed = time.perf_counter() - start
    engine.dispose()
    return len(events) / elapsed


async def reference_year(tmp: Path) -> dict[str, int]:
    from tests.conftest import TEST_SERVER, register_search_attributes

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=data_converter()
    )
    await register_search_attributes(env.client)
    engine = make_engine(f"sqlite:///{tmp / 'year.db'}")
    Base.metadata.create_all(engine)
    queue, cid = f"year-{uuid.uuid4().hex[:6]}", f"year-{uuid.uuid4().hex[:6]}"
    # Month by month: what a typical customer tells us in a year (24 events after the profile).
    plan: dict[int, list[tuple[str, dict[str, Any]]]] = {
        m: [("usage_milestone", {"milestone": f"m{m}"})] for m in range(12)
    }
    for m in (0, 6):
        plan[m].append(("nps_response", {"score": 10}))
    for m in (1, 4, 7, 10):
        plan[m].append(("csat_response", {"score": 5}))
    for m in (2, 5, 8, 11):
        plan[m].append(("support_resolved", {"ticket_id": f"t{m}", "satisfied": True}))
    plan[9].append(("renewal", {"contract_value": 40000}))
    plan[3].append(("social_mention", {"url": "https://s.example", "sentiment": "positive"}))
    n = 0
    async with build_worker(env.client, queue, WorkerParts(make_sessionmaker(engine), DEFAULT_PLAYBOOK, tmp / "o")):
        await send_event(env.client, {"event_id": "p", "customer_id": cid, "type": "customer_profile",
                                      "occurred_at": iso(await env.get_current_time()),
                                      "data": {"email": "y@y.example", "name": "Y", "company": "Y", "segment": "enterprise"}}, queue)  # fmt: skip
        for month in range(12):
            for kind, data in plan[month]:
                n += 1
                now = iso(await env.get_current_time())
                await send_event(
                    env.client,
                    {"event_id": f"e{n}", "customer_id": cid, "type": kind, "occurred_at": now, "data": data},
                    queue,
                )
                await env.sleep(timedelta(days=30.4 / len(plan[month])))
        state = await get_state(env.client, cid)
        # Walk the chain of runs backwards through continued_execution_run_id.
        total, largest, run_id = 0, 0, ""
        while True:
            history = await env.client.get_workflow_handle(workflow_id_for(cid), run_id=run_id or None).fetch_history()
            total += len(history.events)
            largest = max(largest, len(history.events))
            run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not run_id:
                break
        desc = await env.client.get_workflow_handle(workflow_id_for(cid)).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
    await env.shutdown()
    engine.dispose()
    return {
        "customer_events": n,
        "asks": len(state.asks),
        "reminders": sum(1 for a in state.asks if a.reminded_at),
        "rewards": len(state.rewards),
        "runs": state.runs,
        "history_events": total,
        "largest_run_history": largest,
    }


async def main() -> int:
    results: dict[str, Any] = {
        "customers": CUSTOMERS,
        "events_per_customer": EVENTS_PER_CUSTOMER,
        "concurrency": CONCURRENCY,
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = await start_dev_env()
        # Interleaved rounds, so a noisy neighbour on a shared machine hits both sides alike.
        rounds: list[tuple[float, float]] = []
        for n in range(ROUNDS):
            base = await measure_baseline(env.client, f"bench-base-{uuid.uuid4().hex[:6]}")
            ing = await measure_ingest(env.client, f"bench-ing-{uuid.uuid4().hex[:6]}", tmp / f"r{n}")
            rounds.append((base, ing))
        await env.shutdown()
        baseline = statistics.median(b for b, _ in rounds)
        ingest = statistics.median(i for _, i in rounds)
        ratio = statistics.median(i / b for b, i in rounds)
        year = await reference_year(tmp)
    results.update(
        ingest_events_per_s=round(ingest, 1),
        baseline_events_per_s=round(baseline, 1),
        ingest_ratio=round(ratio, 3),
        rounds=[{"baseline_events_per_s": round(b, 1), "ingest_events_per_s": round(i, 1)} for b, i in rounds],
        history_events_per_customer_year=year["history_events"],
        largest_run_history=year["largest_run_history"],
        reference_year=year,
    )
    out = Path(__file__).parent / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("ingest (journeys) events/s", results["ingest_events_per_s"], "target: ratio >= 0.8"),
        ("baseline (signal counter) events/s", results["baseline_events_per_s"], ""),
        ("ingest ratio", results["ingest_ratio"], ">= 0.8" if results["ingest_ratio"] >= 0.8 else "BELOW 0.8"),
        ("history events / customer-year", results["history_events_per_customer_year"], "target: <= 300"),
        ("largest single run history", results["largest_run_history"], "target: <= 10,000"),
    ]
    for name, value, note in rows:
        print(f"{name:<38} {value:>10}  {note}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
