"""The HTTP API and a worker in their own thread and event loop (as separate processes would be), so a
test can block on HTTP calls while journeys keep running."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from alembic import command
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from plumbing.config import DEFAULT_PLAYBOOK, Settings
from plumbing.converter import data_converter
from storage.db import alembic_config, make_engine, make_sessionmaker
from tests.conftest import TEST_SERVER, register_search_attributes
from worker import WorkerParts, build_worker

WRITE_KEY, READ_KEY = "write-key-1", "read-key-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiStack:
    def __init__(
        self,
        target_host: str | None,
        tmp: Path,
        task_queue: str,
        app_options: dict[str, Any] | None = None,
        **settings: object,
    ) -> None:
        """target_host None: start a time-skipping test server in the stack's own loop too."""
        self.app_options = app_options or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{tmp / 'api.db'}"
        self.target_host = target_host
        self.outbox = tmp / "outbox"
        defaults: dict[str, object] = {
            "temporal_address": target_host or "",
            "task_queue": task_queue,
            "database_url": self.db_url,
            "playbook_path": DEFAULT_PLAYBOOK,
            "api_write_keys": (WRITE_KEY,),
            "api_read_keys": (READ_KEY,),
            "referral_landing_url": "https://example.com/welcome",
        }
        self.settings = replace(Settings.from_env(), **{**defaults, **settings})  # type: ignore[arg-type]
        command.upgrade(alembic_config(self.db_url), "head")
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # surfaced by start()
            self.failed = err
            self.ready.set()

    async def _main(self) -> None:
        env = None
        if self.target_host is None:
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=TEST_SERVER, data_converter=data_converter()
            )
            await register_search_attributes(env.client)
            client = env.client
        else:
            client = await Client.connect(self.target_host, data_converter=data_converter())
        engine = make_engine(self.db_url)
        parts = WorkerParts(make_sessionmaker(engine), self.settings.playbook_path, self.outbox)
        async with build_worker(client, self.settings.task_queue, parts, self.settings):
            config = uvicorn.Config(create_app(self.settings, client, **self.app_options), host="127.0.0.1", port=self.port,
                                    log_level="warning", lifespan="on")  # fmt: skip
            self.server = uvicorn.Server(config)
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.05)
            self.ready.set()
            await serving
        engine.dispose()
        if env is not None:
            await env.shutdown()

    def start(self) -> ApiStack:
        self.thread.start()
        self.ready.wait(60)
        if self.failed is not None or self.server is None or not self.server.started:
            raise RuntimeError(f"the API did not start: {self.failed!r}")
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(60)
