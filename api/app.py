"""The ASGI app: `create_app(settings)`; uvicorn serves it (`python starter.py api`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from activities.playbook import read_playbook
from api import auth
from api.ingest import REDELIVER_AFTER, Ingest, Item, ItemError, Outcome
from api.schemas import (
    CONTRACT_EVENT_BODY,
    IngestResult,
    JourneyStateModel,
    Problem,
    segment_body,
)
from api.segment import MAX_BATCH_BYTES, SegmentError, convert, load_mapping
from config import Settings
from converter import data_converter
from journeys import get_state
from storage.db import make_engine, make_sessionmaker
from telemetry import runtime_from_env
from workflows.playbook import Playbook

log = logging.getLogger("advocacy.api")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": IngestResult, "description": "invalid events, each named with its index and field"},
    401: {"model": Problem, "description": "missing or wrong key; nothing applied"},
    413: {"model": Problem, "description": "request larger than the limit"},
    503: {
        "model": Problem,
        "description": "Temporal unreachable: the events are stored and will be delivered; retrying is harmless",
    },
}
RELAY_EVERY_SECONDS = 15.0


@dataclass
class Deps:
    settings: Settings
    client: Client
    sessions: sessionmaker[Session]
    ingest: Ingest
    mapping: dict[str, dict[str, Any]]

    def playbook(self) -> Playbook:
        # Read per request (parsed once per content): an edited playbook applies without a restart.
        return read_playbook(self.settings.playbook_path)


def deps(request: Request) -> Deps:
    value: Deps = request.app.state.deps
    return value


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
        temporal = client or await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(),
            runtime=runtime,
        )
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        app.state.deps = Deps(
            settings=settings,
            client=temporal,
            sessions=sessions,
            ingest=Ingest(temporal, sessions, settings.task_queue, (runtime or Runtime.default()).metric_meter),
            mapping=load_mapping(settings.segment_mapping_path),
        )
        relay = asyncio.create_task(_relay(app.state.deps.ingest, relay_every, relay_after))
        yield
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        engine.dispose()

    app = FastAPI(
        title="Advocacy journeys API",
        version="1.0.0",
        description="Customer events in (contract JSON or Segment's tracking format), journey state out, "
        "referral links, CRM deals, one-click unsubscribe and the SendGrid event webhook.",
        lifespan=lifespan,
    )
    from api import referrals, unsubscribe, webhooks

    app.include_router(_events_router())
    app.include_router(referrals.router)
    app.include_router(unsubscribe.router)
    app.include_router(webhooks.router)

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


async def _json_body(request: Request, limit: int = MAX_BATCH_BYTES) -> Any:
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"request larger than {limit // 1024} KB")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "body: not valid JSON") from None


def _answer(outcome: Outcome) -> JSONResponse:
    # Some items applied: 200 with the failures listed; none applied and some failed: 400.
    status = 400 if outcome.errors and not (outcome.accepted or outcome.recorded_only) else 200
    return JSONResponse(outcome.body(), status_code=status)


def _events_router() -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.post("/v1/events", response_model=IngestResult, responses=ERRORS, tags=["events"],
                 openapi_extra={"requestBody": CONTRACT_EVENT_BODY})  # fmt: skip
    async def post_events(request: Request) -> JSONResponse:
        """One contract event, or a list: each stored once and delivered to its journey."""
        d = deps(request)
        auth.require(request, d.settings.api_write_keys, "write")
        body = await _json_body(request)
        raws = body if isinstance(body, list) else [body]
        items, outcome = [], Outcome()
        for index, raw in enumerate(raws):
            if not isinstance(raw, dict):
                outcome.errors.append(ItemError(index, "event", "expected a JSON object"))
            else:
                items.append(Item(index, raw))
        return _answer(await d.ingest.accept(items, outcome))

    async def segment(request: Request, kind: str) -> JSONResponse:
        d = deps(request)
        auth.require(request, d.settings.api_write_keys, "write")
        body = await _json_body(request)
        if kind == "batch":
            batch = body.get("batch") if isinstance(body, dict) else None
            if not isinstance(batch, list):
                raise HTTPException(400, "batch: required, a list of Segment calls")
            messages = batch
        else:
            if isinstance(body, dict):
                body.setdefault("type", kind)
            messages = [body]
        items, outcome = [], Outcome()
        for index, message in enumerate(messages):
            try:
                converted = convert(message, d.mapping)
            except SegmentError as err:
                outcome.errors.append(ItemError(index, err.field, err.message))
                continue
            items.append(Item(index, converted.as_event(), apply=converted.mapped))
        return _answer(await d.ingest.accept(items, outcome))

    for kind in ("track", "identify", "batch"):

        async def endpoint(request: Request, kind: str = kind) -> JSONResponse:
            return await segment(request, kind)

        endpoint.__doc__ = f"Segment HTTP tracking API: {kind} (write key as HTTP Basic user)."
        router.add_api_route(f"/v1/{kind}", endpoint, methods=["POST"], response_model=IngestResult,
                             responses=ERRORS, tags=["segment"], name=f"segment_{kind}",
                             openapi_extra={"requestBody": segment_body(kind)})  # fmt: skip

    @router.get("/v1/journeys/{customer_id}", response_model=JourneyStateModel, tags=["journeys"],
                responses={401: {"model": Problem}, 404: {"model": Problem}})  # fmt: skip
    async def journey(customer_id: str, request: Request) -> dict[str, Any]:
        """The journey state (the `state` query)."""
        d = deps(request)
        auth.require(request, d.settings.api_read_keys, "read")
        try:
            state = await get_state(d.client, customer_id)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise HTTPException(404, f"no journey for customer {customer_id!r}") from None
            raise
        return asdict(state)

    return router
