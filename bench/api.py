"""`make bench` (part 2): the HTTP API end to end against the Python client, in one run.

- events/second through POST /v1/batch (Segment format; HTTP -> database ->
  signal-with-start -> applied in the journey), against the same number of
  events sent straight to the workflows by the Python client (signal-with-start
  -> applied); the ratio is what the HTTP layer and the event log cost;
- latency of a single /v1/track call (answered after the event is stored and
  signalled), p50 and p99 over sequential calls.

Writes bench/api_results.json. Measured, never asserted in tests.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from alembic import command
from temporalio.client import Client

from api.app import create_app
from bench.run import CONCURRENCY, _events, _pump, _until_applied
from client.journeys import get_state, send_event
from plumbing.config import DEFAULT_PLAYBOOK, Settings
from plumbing.entrypoint import exit_now
from storage.db import alembic_config, make_engine, make_sessionmaker
from tests.conftest import start_dev_env
from worker import WorkerParts, build_worker

KEY = "bench-key"
BATCH_SIZE = 100
TRACK_CALLS = 200


def _as_segment(event: dict[str, Any]) -> dict[str, Any]:
    if event["type"] == "customer_profile":
        return {"type": "identify", "messageId": event["event_id"], "userId": event["customer_id"],
                "timestamp": event["occurred_at"], "traits": event["data"]}  # fmt: skip
    names = {"nps_response": "NPS Survey Submitted", "csat_response": "CSAT Survey Submitted",
             "usage_milestone": "Milestone Reached"}  # fmt: skip
    return {"type": "track", "messageId": event["event_id"], "userId": event["customer_id"],
            "timestamp": event["occurred_at"], "event": names[event["type"]], "properties": event["data"]}  # fmt: skip


async def _applied(client: Client, customers: list[str], per_customer: int) -> None:
    async def check(cid: str) -> bool:
        return (await get_state(client, cid)).events_applied == per_customer

    await _until_applied(check, customers)


async def measure(client: Client, api: httpx.AsyncClient, queue: str) -> dict[str, float]:
    from bench.run import CUSTOMERS, EVENTS_PER_CUSTOMER

    # Straight to the workflows.
    prefix = f"direct{uuid.uuid4().hex[:6]}"
    events = _events(prefix)
    start = time.perf_counter()
    await _pump(events, lambda e: send_event(client, e, queue))
    await _applied(client, [f"{prefix}-{c}" for c in range(CUSTOMERS)], EVENTS_PER_CUSTOMER)
    direct = len(events) / (time.perf_counter() - start)

    # Through the API, in Segment batches.
    prefix = f"api{uuid.uuid4().hex[:6]}"
    events = _events(prefix)
    # Each batch holds whole customers, so a profile is never behind its own events.
    per_batch = max(1, BATCH_SIZE // EVENTS_PER_CUSTOMER) * EVENTS_PER_CUSTOMER
    batches = [[_as_segment(e) for e in events[i : i + per_batch]] for i in range(0, len(events), per_batch)]

    async def post(batch: list[dict[str, Any]]) -> None:
        answer = await api.post("/v1/batch", json={"batch": batch})
        if answer.status_code != 200 or answer.json()["errors"]:
            raise SystemExit(f"/v1/batch answered {answer.status_code}: {answer.text[:300]}")

    start = time.perf_counter()
    await _pump([{"batch": b} for b in batches], lambda item: post(item["batch"]))
    await _applied(client, [f"{prefix}-{c}" for c in range(CUSTOMERS)], EVENTS_PER_CUSTOMER)
    through_api = len(events) / (time.perf_counter() - start)

    # One track call at a time.
    customer = f"lat{uuid.uuid4().hex[:6]}"
    latencies = []
    for n in range(TRACK_CALLS):
        body = {"messageId": f"{customer}-{n}", "userId": customer, "event": "Milestone Reached",
                "properties": {"milestone": f"m{n}"}}  # fmt: skip
        began = time.perf_counter()
        answer = await api.post("/v1/track", json=body)
        latencies.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"/v1/track answered {answer.status_code}: {answer.text[:300]}")
    latencies.sort()
    return {
        "api_batch_events_per_s": round(through_api, 1),
        "direct_client_events_per_s": round(direct, 1),
        "api_ratio": round(through_api / direct, 3),
        "track_p50_ms": round(statistics.median(latencies), 1),
        "track_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
    }


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = await start_dev_env()
        queue = f"bench-api-{uuid.uuid4().hex[:6]}"
        url = f"sqlite:///{tmp / 'api.db'}"
        command.upgrade(alembic_config(url), "head")
        settings = replace(Settings.from_env(), task_queue=queue, database_url=url, playbook_path=DEFAULT_PLAYBOOK,
                           api_write_keys=(KEY,), api_read_keys=(KEY,))  # fmt: skip
        engine = make_engine(url)
        parts = WorkerParts(make_sessionmaker(engine), DEFAULT_PLAYBOOK, tmp / "outbox")
        server = uvicorn.Server(uvicorn.Config(create_app(settings, env.client), host="127.0.0.1", port=0,
                                               log_level="warning"))  # fmt: skip
        async with build_worker(env.client, queue, parts, settings):
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            port = server.servers[0].sockets[0].getsockname()[1]
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"},
                                         timeout=120, limits=limits) as api:  # fmt: skip
                results = await measure(env.client, api, queue)
            server.should_exit = True
            await serving
        engine.dispose()
        await env.shutdown()
    out = Path(__file__).parent / "api_results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, value in results.items():
        print(f"{name:<38} {value:>10}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
