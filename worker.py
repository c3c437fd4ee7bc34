"""Runs the Temporal worker: the AdvocacyJourney workflow and its activities.

`python worker.py` with only the contract's environment variables set runs a
complete worker. SIGTERM / SIGINT shut it down gracefully (in-flight
activities finish first), as container orchestrators expect.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.email import Company, EmailActivities, EmailProvider, LocalProvider
from activities.playbook import PlaybookActivities, read_playbook
from activities.records import RecordActivities
from activities.sendgrid_provider import SendGridProvider, SendGridSettings
from client.connect import connect
from client.namespace import NamespaceNotReady, check_namespace
from mail.render_pool import RenderPool, RenderSettingsError
from mail.templates import TemplateRenderer
from plumbing.config import Settings, weak_secret
from plumbing.entrypoint import exit_now
from plumbing.telemetry import configure_logging, runtime_from_env
from storage.db import make_engine, make_sessionmaker
from workflows.journey import AdvocacyJourney

# Activities (and local activities) share these threads: a send blocked on a template holds one.
ACTIVITY_SLOTS = 16
# Local activities (playbook, customer record) share the executor: threads of their own, so a journey's
# setup never queues behind slow sends and its workflow task is not split by a heartbeat.
LOCAL_ACTIVITY_SLOTS = 8


@dataclass
class WorkerParts:
    sessions: sessionmaker[Session]
    playbook_path: Path
    outbox_dir: Path
    provider: EmailProvider | None = None


def make_provider(settings: Settings) -> EmailProvider:
    if settings.email_provider == "local":
        return LocalProvider(settings.outbox_dir)
    if settings.email_provider == "sendgrid":
        return SendGridProvider(SendGridSettings.from_env())
    raise SystemExit(f"EMAIL_PROVIDER={settings.email_provider!r} is not supported (use 'local' or 'sendgrid')")


def build_worker(client: Client, task_queue: str, parts: WorkerParts, settings: Settings | None = None) -> Worker:
    settings = settings or Settings.from_env()
    read_playbook(parts.playbook_path)  # fail at start, not at the first journey, on a bad playbook
    email = EmailActivities(
        TemplateRenderer(settings.templates_dir),
        parts.provider or LocalProvider(parts.outbox_dir),
        parts.sessions,
        Company(settings.company_name, settings.postal_address, settings.public_base_url),
    )
    records = RecordActivities(parts.sessions)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[AdvocacyJourney],
        # Our workflow modules are deterministic and keep no mutable globals: importing them once
        # instead of once per run is the sandbox's largest per-journey cost.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
        ),
        activities=[PlaybookActivities(parts.playbook_path).load_playbook, email.send_email, *records.all()],
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS + LOCAL_ACTIVITY_SLOTS),
        max_concurrent_activities=ACTIVITY_SLOTS,
        max_concurrent_local_activities=LOCAL_ACTIVITY_SLOTS,
        graceful_shutdown_timeout=timedelta(seconds=30),
    )


async def main() -> int:
    configure_logging()
    settings = Settings.from_env()
    # The worker signs the unsubscribe links the API verifies: a published default would let anyone
    # unsubscribe anyone, and a different secret would break every link.
    problem = weak_secret("UNSUBSCRIBE_SECRET", settings.unsubscribe_secret)
    if problem:
        logging.error("%s", problem)
        return 2
    client = await connect(settings, runtime_from_env())
    try:
        await check_namespace(client)
    except NamespaceNotReady as err:
        logging.error("%s", err)
        return 2
    parts = WorkerParts(
        sessions=make_sessionmaker(make_engine(settings.database_url)),
        playbook_path=settings.playbook_path,
        outbox_dir=settings.outbox_dir,
        provider=make_provider(settings),
    )
    try:
        worker = build_worker(client, settings.task_queue, parts, settings)
    except RenderSettingsError as err:
        logging.error("%s", err)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.info("worker on task queue %s at %s", settings.task_queue, settings.temporal_address)
    async with worker:
        await stop.wait()
        logging.info("shutting down: finishing in-flight activities")
    RenderPool.close_shared()  # the template render processes end with the worker
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
