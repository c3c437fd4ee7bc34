"""The API's front door: secrets it refuses to start without, bodies bounded before they are read,
authentication before the body, gzip from Segment's clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import segment.analytics as segment
import uvicorn
from alembic import command
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import starter
from api import webhooks
from api.app import create_app
from api.segment import MAX_BATCH_BYTES
from client.events import new_event
from client.ingest import CONFLICT
from plumbing.config import DEFAULT_PLAYBOOK, Settings
from storage.db import alembic_config, database
from storage.models import Event, Message, WebhookEvent
from tests.api_stack import READ_KEY, WRITE_KEY, ApiStack
from workflows.model import workflow_id_for

WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}

STRONG = secrets.token_hex(24)


def _no_serving(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """`starter.py api` with keys set and uvicorn's serving replaced: the list records whether it served."""
    served: list[bool] = []

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        served.append(True)

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("API_WRITE_KEYS", "w" * 32)
    monkeypatch.setenv("API_READ_KEYS", "r" * 32)
    return served


@pytest.mark.parametrize("secret", [None, "", "change-me", "dev-only-unsubscribe-secret", "short-secret"])
def test_the_api_refuses_to_start_without_a_strong_unsubscribe_secret(
    secret: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = _no_serving(monkeypatch)
    if secret is None:
        monkeypatch.delenv("UNSUBSCRIBE_SECRET", raising=False)
    else:
        monkeypatch.setenv("UNSUBSCRIBE_SECRET", secret)
    assert starter.main(["api"]) == 2
    assert served == [] and "UNSUBSCRIBE_SECRET" in capsys.readouterr().err


def test_the_api_starts_with_a_strong_unsubscribe_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    served = _no_serving(monkeypatch)
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", STRONG)
    assert starter.main(["api"]) == 0 and served == [True]


@contextlib.asynccontextmanager
async def serve_front(env: WorkflowEnvironment, tmp_path: Path, **settings: Any) -> AsyncIterator[Front]:
    """The app in this process (its lifespan run, no server), so a test sees each chunk the app pulls."""
    db_url = f"sqlite:///{tmp_path / 'api.db'}"
    command.upgrade(alembic_config(db_url), "head")
    defaults = {"database_url": db_url, "task_queue": f"front-{uuid.uuid4().hex[:8]}", "playbook_path": DEFAULT_PLAYBOOK,
                "api_write_keys": (WRITE_KEY,), "api_read_keys": (READ_KEY,), "sendgrid_webhook_public_key": ""}  # fmt: skip
    app = create_app(replace(Settings.from_env(), **{**defaults, **settings}), env.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30) as http:
            yield Front(http, db_url, env.client)


@pytest.fixture
async def front(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Front]:
    async with serve_front(env, tmp_path) as front:
        yield front


@dataclass
class Front:
    http: httpx.AsyncClient
    db_url: str
    client: Client

    def events(self, customer: str) -> list[Event]:
        with database(self.db_url) as sessions, sessions() as session:
            return list(session.scalars(select(Event).where(Event.customer_id == customer)))


class Stream:
    """A request body that counts what the server pulled from it."""

    def __init__(self, total: int, chunk: int = 64 * 1024, fill: bytes = b" ") -> None:
        self.total, self.chunk, self.fill, self.pulled = total, chunk, fill, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield self.fill * self.chunk


POSTS = ["/v1/events", "/v1/track", "/v1/identify", "/v1/batch", "/v1/referrals", "/v1/crm/deals",
         "/v1/webhooks/sendgrid"]  # fmt: skip


@pytest.mark.parametrize("path", POSTS)
async def test_a_large_body_without_credentials_is_refused_unread(front: Front, path: str) -> None:
    body = Stream(64 * 1024 * 1024)
    answer = await front.http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text
    assert body.pulled == 0  # not one byte of the 64 MB was read


@pytest.mark.parametrize("path", POSTS)
async def test_a_declared_length_over_the_limit_is_refused_unread(front: Front, path: str) -> None:
    body = Stream(8 * 1024 * 1024)
    headers = {**WRITE, "Content-Type": "application/json", "Content-Length": str(body.total)}
    answer = await front.http.post(path, content=body, headers=headers)
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]
    assert body.pulled == 0


@pytest.mark.parametrize(("path", "limit"), [("/v1/batch", MAX_BATCH_BYTES), ("/v1/referrals", 64 * 1024),
                                             ("/v1/webhooks/sendgrid", webhooks.MAX_BODY)])  # fmt: skip
async def test_a_streamed_body_is_counted_and_refused_once_over_the_limit(front: Front, path: str, limit: int) -> None:
    body = Stream(64 * 1024 * 1024, chunk=16 * 1024)
    answer = await front.http.post(path, content=body, headers={**WRITE, "Content-Type": "application/json"})
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]
    assert body.pulled <= limit + body.chunk


def _gzip(value: Any) -> bytes:
    return gzip.compress(json.dumps(value).encode())


async def test_gzip_from_segment_clients_is_accepted(front: Front) -> None:
    customer = f"gz-{uuid.uuid4().hex[:6]}"
    batch = {"batch": [{"type": "identify", "messageId": f"{customer}-1", "userId": customer,
                        "traits": {"email": f"{customer}@gz.example", "name": "Ada", "company": "Analytical"}},
                       {"type": "track", "messageId": f"{customer}-2", "userId": customer,
                        "event": "NPS Survey Submitted", "properties": {"score": 9}}]}  # fmt: skip
    headers = {**WRITE, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = await front.http.post("/v1/batch", content=_gzip(batch), headers=headers)
    assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
    track = {"messageId": f"{customer}-3", "userId": customer, "event": "Milestone Reached"}
    answer = await front.http.post("/v1/track", content=_gzip(track), headers=headers)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    assert len(front.events(customer)) == 3


async def test_a_gzip_bomb_and_broken_gzip_are_refused(front: Front) -> None:
    headers = {**WRITE, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]")  # 200 MB of JSON in 200 KB
    assert len(bomb) < MAX_BATCH_BYTES
    answer = await front.http.post("/v1/batch", content=bomb, headers=headers)
    assert answer.status_code == 413 and "decompressed" in answer.json()["detail"]
    broken = await front.http.post("/v1/batch", content=b"not gzip at all", headers=headers)
    assert broken.status_code == 400 and "gzip" in broken.json()["detail"]
    cut = await front.http.post("/v1/batch", content=_gzip({"batch": []})[:-12], headers=headers)
    assert cut.status_code == 400 and "gzip" in cut.json()["detail"]
    # Where gzip is not taken, an encoding is refused rather than read as garbage.
    other = await front.http.post("/v1/referrals", content=_gzip({}), headers=headers)
    assert other.status_code == 415 and "Content-Encoding" in other.json()["detail"]


async def test_the_official_segment_client_with_gzip_on(env: WorkflowEnvironment, tmp_path: Path) -> None:
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"gz-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(stack.start)
    customer, errors = f"gzs-{uuid.uuid4().hex[:6]}", []
    client = segment.Client(write_key=WRITE_KEY, host=stack.url, gzip=True, max_retries=0, upload_size=100,
                            on_error=lambda err, batch: errors.append(err))  # fmt: skip

    def send() -> None:
        client.identify(customer, {"email": f"{customer}@gz.example", "name": "Grace", "company": "Navy"})
        client.track(customer, "NPS Survey Submitted", {"score": 10})
        client.flush()

    try:
        await asyncio.to_thread(send)
        assert errors == []
        with database(stack.db_url) as sessions, sessions() as session:
            stored = set(session.scalars(select(Event.type).where(Event.customer_id == customer)))
        assert stored == {"customer_profile", "nps_response"}
    finally:
        await asyncio.to_thread(stack.stop)


async def test_one_bad_segment_item_is_refused_and_the_rest_kept(front: Front) -> None:
    customer = f"bad-{uuid.uuid4().hex[:6]}"

    def track(n: int, **extra: Any) -> dict[str, Any]:
        return {"type": "track", "messageId": f"{customer}-{n}", "userId": customer, "event": "Milestone Reached",
                "timestamp": "2026-11-20T10:00:00Z", **extra}  # fmt: skip

    batch = [track(0), track(1, timestamp="0001-01-01T00:00:00+05:00"), track(2, timestamp="9999-12-31T23:30:00-05:00"),
             track(3, properties={"value": float("nan")}), track(4, event="Viewed Pricing", properties={"x": float("inf")}),
             track(5, properties={"milestone": "a\u0000b"}), track(6)]  # fmt: skip
    body = json.dumps({"batch": batch})  # NaN and Infinity as Python writes them (not JSON, but sent)
    answer = await front.http.post("/v1/batch", content=body, headers={**WRITE, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["accepted"] == 2 and result["recorded_only"] == 0
    assert [(e["index"], e["field"]) for e in result["errors"]] == [
        (1, "timestamp"), (2, "timestamp"), (3, "properties.value"), (4, "properties.x"), (5, "properties.milestone")]  # fmt: skip
    assert sorted(e.event_id for e in front.events(customer)) == [f"{customer}-0", f"{customer}-6"]


async def test_one_bad_contract_event_is_refused_and_the_rest_kept(front: Front) -> None:
    customer = f"badc-{uuid.uuid4().hex[:6]}"
    good = new_event(customer, "usage_milestone", {"milestone": "first"})
    early = {**new_event(customer, "usage_milestone", {"milestone": "x"}), "occurred_at": "0001-01-01T00:00:00+05:00"}
    nan = new_event(customer, "usage_milestone", {"milestone": "y", "value": float("nan")})
    body = json.dumps([early, nan, good])
    answer = await front.http.post("/v1/events", content=body, headers={**WRITE, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(0, "occurred_at"), (1, "data.value")]
    assert [e.event_id for e in front.events(customer)] == [good["event_id"]]


async def test_one_bad_webhook_event_is_ignored_and_the_rest_kept(front: Front) -> None:
    customer = f"whbad-{uuid.uuid4().hex[:6]}"

    def event(kind: str, timestamp: Any) -> dict[str, Any]:
        return {"event": kind, "email": f"{customer}@x.example", "timestamp": timestamp, "customer_id": customer,
                "sg_message_id": f"m-{kind}", "idempotency_key": f"{customer}:review-1:{kind}"}  # fmt: skip

    body = json.dumps([event("delivered", float("nan")), event("open", 1e300), event("spamreport", int(time.time()))])
    answer = await front.http.post("/v1/webhooks/sendgrid", content=body, headers={**WRITE, "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 2}
    assert [e.type for e in front.events(customer)] == ["unsubscribed"]  # the spam report reached the journey


async def test_a_reused_event_id_with_different_content_is_refused(front: Front) -> None:
    first, second = f"owner-{uuid.uuid4().hex[:6]}", f"thief-{uuid.uuid4().hex[:6]}"
    event = new_event(first, "nps_response", {"score": 9})
    post = {**WRITE, "Content-Type": "application/json"}
    assert (await front.http.post("/v1/events", json=event, headers=post)).status_code == 200
    again = await front.http.post("/v1/events", json=event, headers=post)  # the same event: an idempotent retry
    assert again.status_code == 200 and again.json()["accepted"] == 1
    for changed in ({**event, "customer_id": second}, {**event, "data": {"score": 2}},
                    {**event, "type": "csat_response", "data": {"score": 2}}):  # fmt: skip
        answer = await front.http.post("/v1/events", json=changed, headers=post)
        assert answer.status_code == 409, answer.text
        assert answer.json()["errors"] == [{"index": 0, "field": "event_id", "message": CONFLICT}]
    # In a list, the conflicting item (stored or earlier in the same list) is refused; the rest are kept.
    fresh = new_event(second, "usage_milestone", {"milestone": "first"})
    clash = {**fresh, "data": {"milestone": "other"}}
    answer = await front.http.post("/v1/events", json=[{**event, "customer_id": second}, fresh, clash], headers=post)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(0, "event_id"), (2, "event_id")]
    assert [e.event_id for e in front.events(second)] == [fresh["event_id"]]
    assert [(e.event_id, e.data) for e in front.events(first)] == [(event["event_id"], {"score": 9})]
    # The journey of the second customer never saw the first customer's event.
    assert await _journey_events(front, second) == 1


async def _journey_events(front: Front, customer: str) -> int:
    """Signals that reached the customer's journey (signal-with-start records one too)."""
    history = await front.client.get_workflow_handle(workflow_id_for(customer)).fetch_history()
    return sum(1 for e in history.events if e.HasField("workflow_execution_signaled_event_attributes"))


@pytest.mark.parametrize("path", POSTS)
async def test_deeply_nested_json_is_a_clear_400(front: Front, path: str) -> None:
    for body in ("[" * 60_000, "[" * 100 + "]" * 100, '{"a":' * 70 + "1" + "}" * 70):
        answer = await front.http.post(path, content=body, headers={**WRITE, "Content-Type": "application/json"})
        assert answer.status_code in (400, 422), (path, answer.text)
        if path.startswith(("/v1/events", "/v1/track", "/v1/identify", "/v1/batch", "/v1/webhooks")):
            assert answer.json()["detail"] == "body: nested deeper than 64 levels"


@pytest.mark.parametrize("token", ["a.\u00b2.c", "YQ.1.\u00e9\u00e9", "YQ." + "9" * 5000 + ".c", "YQ.1." + "a" * 5000,
                                   "%FF.1.c", "YQ.-1.c"])  # fmt: skip
async def test_a_malformed_unsubscribe_token_gets_the_invalid_link_page(front: Front, token: str) -> None:
    for method in ("GET", "POST"):
        answer = await front.http.request(method, f"/u/{token}")
        assert answer.status_code == 400 and "This link does not work" in answer.text, (method, answer.text[:200])


def _signed(private: ec.EllipticCurvePrivateKey, body: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = private.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}  # fmt: skip


def _malleated(headers: dict[str, str]) -> dict[str, str]:
    """The same signature in another valid encoding: ECDSA's (r, n - s) verifies as well as (r, s)."""
    r, s = decode_dss_signature(base64.b64decode(headers["X-Twilio-Email-Event-Webhook-Signature"]))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order
    other = base64.b64encode(encode_dss_signature(r, order - s)).decode()
    return {**headers, "X-Twilio-Email-Event-Webhook-Signature": other}


async def test_a_signed_webhook_post_replayed_with_a_re_encoded_signature_is_refused(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with serve_front(env, tmp_path, sendgrid_webhook_public_key=base64.b64encode(public).decode()) as front:
        body = json.dumps([{"event": "processed", "email": "someone@else.example", "timestamp": int(time.time())}])
        headers = _signed(private, body)
        assert (await front.http.post("/v1/webhooks/sendgrid", content=body, headers=headers)).status_code == 200
        for replay in (headers, _malleated(headers)):
            answer = await front.http.post("/v1/webhooks/sendgrid", content=body, headers=replay)
            assert answer.status_code == 401 and "replayed" in answer.json()["detail"], answer.text


def _outbox_row(front: Front, customer: str, key: str, provider_id: str) -> None:
    now = datetime.now(timezone.utc)
    with database(front.db_url) as sessions, sessions.begin() as session:
        session.add(Message(idempotency_key=key, customer_id=customer, ask_id="review-1", program="review",
                            template="ask_review", locale="en", to_email=f"{customer}@x.example", subject="s",
                            html="h", text="t", status="sent", provider="sendgrid", provider_message_id=provider_id,
                            created_at=now, sent_at=now))  # fmt: skip


async def test_a_webhook_event_acts_on_the_customer_of_the_outbox_row_it_names(front: Front) -> None:
    owner, other = f"own-{uuid.uuid4().hex[:6]}", f"oth-{uuid.uuid4().hex[:6]}"
    key = f"{owner}:review-1:invite"
    _outbox_row(front, owner, key, f"pm-{owner}")
    now = int(time.time())
    events = [
        # Names the owner's message but another customer: refused, nothing marked for either.
        {"event": "bounce", "timestamp": now, "idempotency_key": key, "customer_id": other, "reason": "550"},
        {"event": "dropped", "timestamp": now, "sg_message_id": f"pm-{owner}.filter0001", "customer_id": other},
        # Names the message only: the owner's.
        {"event": "spamreport", "timestamp": now, "idempotency_key": key},
    ]  # fmt: skip
    answer = await front.http.post("/v1/webhooks/sendgrid", json=events, headers=WRITE)
    assert answer.status_code == 200 and answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 2}
    assert [e.type for e in front.events(owner)] == ["unsubscribed"] and front.events(other) == []
    with database(front.db_url) as sessions, sessions() as session:
        (row,) = session.scalars(select(Message).where(Message.idempotency_key == key))
        assert row.bounced_at is None and row.last_event == "spamreport"
        assert set(session.scalars(select(WebhookEvent.customer_id))) == {owner}
