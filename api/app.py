"""The ASGI app: `create_app(settings)`; uvicorn serves it (`python starter.py api`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from activities.playbook import read_playbook
from api import advocate, events, referrals, unsubscribe, webhooks
from api.deps import Deps
from api.segment import load_mapping
from api.transport import BodyGuard
from client.connect import connect
from client.ingest import REDELIVER_AFTER, Ingest
from plumbing.config import Settings
from plumbing.telemetry import runtime_from_env
from storage.db import make_engine, make_sessionmaker

log = logging.getLogger("advocacy.api")
RELAY_EVERY_SECONDS = 15.0


def create_app(
    settings: Settings,
    client: Client | None = None,
    relay_every: float = RELAY_EVERY_SECONDS,
    relay_after: timedelta = REDELIVER_AFTER,
) -> FastAPI:
    """The app; connects to Temporal and the database at startup unless a client is given.

    Every `relay_every` seconds it delivers the events a failed request left pending for `relay_after`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = runtime_from_env()
        temporal = client or await connect(settings, runtime)
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        app.state.deps = Deps(
            settings=settings,
            client=temporal,
            sessions=sessions,
            ingest=Ingest(
                temporal,
                sessions,
                settings.task_queue,
                (runtime or Runtime.default()).metric_meter,
                playbook=lambda: read_playbook(settings.playbook_path),
            ),
            mapping=load_mapping(settings.segment_mapping_path),
        )
        relay = asyncio.create_task(_relay(app.state.deps.ingest, relay_every, relay_after))
        yield
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        engine.dispose()

    # /docs (Swagger UI) loads its scripts and styles from this app (fastapi-offline ships them), not from a CDN:
    # the docs read on a machine without internet. No ReDoc: it fetches its logo from cdn.redoc.ly, whatever we serve.
    app = FastAPIOffline(
        static_url="/docs-assets",
        redoc_url=None,
        title="Advocacy journeys API",
        version="1.0.0",
        description="Customer events in (contract JSON or Segment's tracking format), journey state out, "
        "referral links, CRM deals, one-click unsubscribe and the SendGrid event webhook.",
        lifespan=lifespan,
    )
    # Authenticated and bounded before any route reads a body.
    app.add_middleware(BodyGuard, settings=settings)
    app.include_router(events.router)
    app.include_router(referrals.router)
    app.include_router(unsubscribe.router)
    app.include_router(webhooks.router)
    app.include_router(advocate.router)

    @app.exception_handler(HTTPException)
    async def problem(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, exc: RPCError) -> JSONResponse:
        # What was stored stays pending and the relay delivers it; the caller's retry is harmless too.
        log.warning("Temporal failed during %s %s: %s", request.method, request.url.path, exc.message)
        detail = f"journeys unavailable, retry later: {exc.message}"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})

    return app


async def _relay(ingest: Ingest, every: float, after: timedelta) -> None:
    """Deliver, every few seconds, the events a failed request left pending."""
    while True:
        await asyncio.sleep(every)
        try:
            await ingest.redeliver(after)
        except Exception as err:  # Temporal or the database still down: next round
            log.warning("relay round failed: %s", err)
