"""Events in: contract events (`/v1/events`), Segment's tracking API, and journey state out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from api import auth
from api.bodies import parse_json
from api.deps import AppDeps, deps
from api.schemas import CONTRACT_EVENT_BODY, IngestResult, JourneyStateModel, Problem, segment_body
from api.segment import SegmentError, convert
from client.ingest import Item, ItemError, Outcome
from client.journeys import get_state

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": IngestResult, "description": "invalid events, each named with its index and field"},
    401: {"model": Problem, "description": "missing or wrong key; nothing applied"},
    409: {"model": IngestResult, "description": "event_id already used by a different event; nothing applied"},
    413: {"model": Problem, "description": "request larger than the limit (500 KB, also once gzip is inflated)"},
    415: {"model": Problem, "description": "a Content-Encoding other than gzip"},
    503: {
        "model": Problem,
        "description": "Temporal unreachable: the events are stored and will be delivered; retrying is harmless",
    },
}


async def _json_body(request: Request) -> Any:
    # Authenticated, at most MAX_BATCH_BYTES, inflated (api/transport.py).
    return parse_json(await request.body())


def _answer(outcome: Outcome) -> JSONResponse:
    # Some items applied: 200 with the failures listed; none applied and some failed: 400, or 409
    # when every failure is an event_id already taken by a different event.
    status = 200
    if outcome.errors and not (outcome.accepted or outcome.recorded_only):
        status = 409 if outcome.conflicts == len(outcome.errors) else 400
    return JSONResponse(outcome.body(), status_code=status)


router = APIRouter()


@router.post("/v1/events", response_model=IngestResult, responses=ERRORS, tags=["events"],
             openapi_extra={"requestBody": CONTRACT_EVENT_BODY})  # fmt: skip
async def post_events(request: Request, d: AppDeps) -> JSONResponse:
    """One contract event, or a list: each stored once and delivered to its journey."""
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
async def journey(customer_id: str, request: Request, d: AppDeps) -> dict[str, Any]:
    """The journey state (the `state` query)."""
    auth.require(request, d.settings.api_read_keys, "read")
    try:
        state = await get_state(d.client, customer_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no journey for customer {customer_id!r}") from None
        raise
    return asdict(state)
