"""SendGrid's event webhook: verified, de-duplicated on our own keys, mapped back to journeys through the
outbox row an event names (custom_args' idempotency key, or sg_message_id); custom_args' customer_id only
when it names no message we sent, and never against the row.

- bounce, dropped: the address is undeliverable; email asks stop (update `email_feedback`);
- unsubscribe, group_unsubscribe, spamreport: the customer is opted out (an `unsubscribed` event);
- delivered, open, click: recorded on the outbox row; a click on an ask's link is engagement.

With `SENDGRID_WEBHOOK_PUBLIC_KEY` set, every post must carry SendGrid's ECDSA
signature over timestamp + body (checked with the sendgrid package's helper),
be fresh (5 minutes), and not be a replay; without it, a write key is required.

Nothing is lost when Temporal cannot be reached: the event's dedupe row (and
the post's receipt) are removed again and the answer is 503, so SendGrid
retries the post; the events already applied are then duplicates, skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api import auth
from api.bodies import parse_json
from api.deps import Deps, deps
from api.schemas import Problem, WebhookResult
from client.events import new_event
from client.ingest import Item, unstorable
from client.journeys import handle
from plumbing.config import Settings
from storage.models import Message, WebhookEvent, WebhookReceipt
from storage.suppressions import suppress
from workflows.journey import AdvocacyJourney
from workflows.model import EmailFeedbackInput

log = logging.getLogger("advocacy.api")
router = APIRouter(tags=["webhooks"])
MAX_AGE_SECONDS = 300
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_BODY = 5 * 1024 * 1024
UNDELIVERABLE = {"bounce", "dropped"}
OPT_OUT = {"unsubscribe", "group_unsubscribe", "spamreport"}
ON_ROW = {"delivered": "delivered_at", "open": "opened_at", "click": "clicked_at", "bounce": "bounced_at",
          "dropped": "bounced_at"}  # fmt: skip


def admit(request: Request, settings: Settings) -> None:
    """What the headers alone can tell, checked before the body is read (api/transport.py):
    SendGrid's signature headers, fresh; without a public key configured, a write key."""
    if settings.sendgrid_webhook_public_key:
        _signed_headers(request)
    else:
        auth.require(request, settings.api_write_keys, "write")


def _signed_headers(request: Request) -> tuple[str, str]:
    signature = request.headers.get(EventWebhookHeader.SIGNATURE)
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
    if not signature or not timestamp:
        raise HTTPException(401, "unsigned: SendGrid's signature and timestamp headers are required")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        raise HTTPException(401, "stale or invalid timestamp")
    return signature, timestamp


def _verify(request: Request, d: Deps, body: bytes) -> None:
    signature, timestamp = _signed_headers(request)
    try:
        verifier = EventWebhook()
        key = verifier.convert_public_key_to_ecdsa(d.settings.sendgrid_webhook_public_key)
        valid = verifier.verify_signature(body.decode("utf-8"), signature, timestamp, key)
    except (ValueError, TypeError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise HTTPException(401, "signature does not verify")


# A journey that ended or never existed answers these: the event is kept, and there is nothing to retry.
_JOURNEY_GONE = {RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION}


class JourneysUnavailable(Exception):
    """Temporal did not take an event this time; SendGrid should post again."""


def _receipt_key(timestamp: str, body: bytes) -> str:
    """A signed post's identity: what the signature covers (timestamp and body), not the signature's text,
    which has more than one valid encoding (ECDSA's (r, n - s), base64 variants)."""
    return hashlib.sha256(timestamp.encode() + b"." + hashlib.sha256(body).digest()).hexdigest()


def _first_time(d: Deps, receipt: str) -> bool:
    try:
        with d.sessions.begin() as session:
            # The column keeps its name; it holds the receipt key.
            session.add(WebhookReceipt(signature_hash=receipt, received_at=datetime.now(timezone.utc)))
        return True
    except IntegrityError:
        return False


def _unreceive(d: Deps, key: str, receipt: str | None) -> None:
    """Undo the dedupe row (and the post's receipt) of an event that did not reach its journey."""
    with d.sessions.begin() as session:
        session.execute(delete(WebhookEvent).where(WebhookEvent.dedupe_key == key))
        if receipt:
            session.execute(delete(WebhookReceipt).where(WebhookReceipt.signature_hash == receipt))


def dedupe_key(event: dict[str, Any]) -> str:
    # Our own fields: SendGrid's sg_event_id can change when it retries the same event.
    parts = [event.get(k) for k in ("idempotency_key", "event", "timestamp", "url", "email", "sg_message_id")]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Owner:
    """Whose email an event is about: from the outbox row it names, else from its custom_args."""

    customer_id: str | None
    ask_id: str | None


class NotTheirs(Exception):
    """The event names one customer's outbox message and claims another customer."""


def _outbox_row(session: Session, event: dict[str, Any]) -> Message | None:
    if event.get("idempotency_key"):
        return session.scalar(select(Message).where(Message.idempotency_key == str(event["idempotency_key"])))
    if event.get("sg_message_id") and event.get("customer_id"):
        # SendGrid's sg_message_id is our X-Message-Id followed by ".filter...".
        provider_id = str(event["sg_message_id"]).split(".", 1)[0]
        return session.scalars(select(Message).where(Message.provider_message_id == provider_id)).first()
    return None


def _store(d: Deps, event: dict[str, Any], key: str) -> Owner | None:
    """Store the event once and update its outbox row; None for a duplicate.

    The customer comes from the outbox row the event names; its own customer_id only when it
    names no message we sent. A customer_id that contradicts the row raises NotTheirs, nothing stored.
    """
    kind = str(event.get("event", ""))[:32]
    at = datetime.fromtimestamp(float(event["timestamp"]), timezone.utc) if _number(event.get("timestamp")) else None
    claimed = _text(event.get("customer_id"))
    try:
        with d.sessions.begin() as session:
            row = _outbox_row(session, event)
            if row is not None and claimed is not None and claimed != row.customer_id:
                raise NotTheirs(f"{kind} names a message to {row.customer_id} but claims customer {claimed}")
            owner = (
                Owner(row.customer_id, row.ask_id) if row is not None else Owner(claimed, _text(event.get("ask_id")))
            )
            address = row.to_email if row is not None else event.get("email")
            if kind in UNDELIVERABLE | OPT_OUT and isinstance(address, str) and address.strip():
                # The address itself: no send reaches it again, whichever journey asks.
                suppress(session, reason=kind, source="SendGrid event webhook", customer_id=owner.customer_id,
                         email=address[:320])  # fmt: skip
            session.add(WebhookEvent(dedupe_key=key, event=kind, idempotency_key=_text(event.get("idempotency_key")),
                                     customer_id=owner.customer_id, received_at=datetime.now(timezone.utc),
                                     payload=event))  # fmt: skip
            if row is not None:
                row.last_event = kind
                column = ON_ROW.get(kind)
                if column and getattr(row, column) is None:
                    setattr(row, column, at or datetime.now(timezone.utc))
        return owner
    except IntegrityError:
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unusable(event: Any) -> str | None:
    """Why one event of a post cannot be kept, or None."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return "not an object with an 'event' name"
    timestamp = event.get("timestamp")
    if timestamp is not None and not (_number(timestamp) and 0 <= timestamp <= MAX_TIMESTAMP):
        return f"timestamp: not a Unix time in seconds: {str(timestamp)[:40]}"
    unfit = unstorable(event)
    return f"{unfit[0]}: {unfit[1]}" if unfit else None


def _text(value: Any) -> str | None:
    return str(value)[:255] if value not in (None, "") else None


@router.post("/v1/webhooks/sendgrid", response_model=WebhookResult,
             responses={400: {"model": Problem}, 401: {"model": Problem}, 413: {"model": Problem},
                        503: {"model": Problem, "description": "Temporal unreachable: post again"}})  # fmt: skip
async def sendgrid_events(request: Request) -> WebhookResult:
    d = deps(request)
    admit(request, d.settings)
    body = await request.body()  # at most MAX_BODY (api/transport.py)
    receipt = None
    if d.settings.sendgrid_webhook_public_key:
        _verify(request, d, body)
        receipt = _receipt_key(request.headers.get(EventWebhookHeader.TIMESTAMP, ""), body)
        if not await asyncio.to_thread(_first_time, d, receipt):
            raise HTTPException(401, "replayed: this signed post was already received")
    events = parse_json(body)
    if not isinstance(events, list):
        raise HTTPException(400, "body: expected a JSON list of events")
    result = WebhookResult(accepted=0, duplicates=0, ignored=0)
    for index, event in enumerate(events):
        problem = _unusable(event)
        if problem:  # this one event is skipped; the others in the post are kept
            log.warning("webhook event %d ignored: %s", index, problem)
            result.ignored += 1
            continue
        key = dedupe_key(event)
        try:
            owner = await asyncio.to_thread(_store, d, event, key)
        except NotTheirs as err:
            log.warning("webhook event %d refused: %s", index, err)
            result.ignored += 1
            continue
        if owner is None:
            result.duplicates += 1
            continue
        try:
            await _to_journey(d, event, owner)
        except JourneysUnavailable as err:
            await asyncio.to_thread(_unreceive, d, key, receipt)
            raise HTTPException(503, f"journeys unavailable, post again: {err}") from None
        result.accepted += 1
    return result


async def _to_journey(d: Deps, event: dict[str, Any], owner: Owner) -> None:
    kind, customer, ask_id = event["event"], owner.customer_id, owner.ask_id
    if customer is None:
        return  # not one of ours (no custom_args, no outbox row)
    try:
        if kind in UNDELIVERABLE:
            reason = str(event.get("reason") or event.get("type") or kind)[:200]
            await _feedback(
                d, customer, EmailFeedbackInput(kind="undeliverable", ask_id=ask_id, reason=f"{kind}: {reason}")
            )
        elif kind in OPT_OUT:
            raw = new_event(
                customer, "unsubscribed", {"reason": f"SendGrid {kind}"}, event_id=f"sendgrid-{dedupe_key(event)[:32]}"
            )
            await d.ingest.accept([Item(0, raw)])
        elif kind == "click" and ask_id and "utm_source=advocacy" in str(event.get("url", "")):
            await _feedback(d, customer, EmailFeedbackInput(kind="click", ask_id=ask_id))
    except WorkflowUpdateFailedError as err:
        log.warning("webhook event %s for %s refused by its journey: %s", kind, customer, err)
    except RPCError as err:
        if err.status not in _JOURNEY_GONE:
            raise JourneysUnavailable(err.message) from err
        log.warning("webhook event %s for %s has no running journey: %s", kind, customer, err.message)


async def _feedback(d: Deps, customer_id: str, feedback: EmailFeedbackInput) -> None:
    await handle(d.client, customer_id).execute_update(AdvocacyJourney.email_feedback, feedback)
