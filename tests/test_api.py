"""The HTTP API end to end: a real server, real journeys (time-skipping server), real clients."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import segment.analytics as segment
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

import starter
from api import webhooks
from api.referrals import LINK_CLICKS_PER_MINUTE
from client import ingest as api_ingest
from client import journeys
from client.events import new_event
from mail.links import unsubscribe_token
from storage.db import database
from storage.models import Customer, Event, Message, ReferralClick, ReferralRow, Suppression
from tests.api_stack import READ_KEY, WRITE_KEY, ApiStack

WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}


@pytest.fixture
async def api(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[ApiStack]:
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"api-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(stack.start)
    yield stack
    await asyncio.to_thread(stack.stop)


@pytest.fixture
async def http(api: ApiStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        yield client


def _event(customer: str, type: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return new_event(customer, type, data, event_id=event_id)


def _profile(customer: str, email: str | None = None) -> dict[str, Any]:
    return _event(customer, "customer_profile", {"email": email or f"{customer}@{customer}.example", "name": "Ada Lovelace",
                                                 "company": "Analytical", "segment": "enterprise"})  # fmt: skip


async def _eventually(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


def _rows(api: ApiStack, model: Any, *where: Any) -> list[Any]:
    with database(api.db_url) as sessions, sessions() as session:
        return list(session.scalars(select(model).where(*where)))


async def test_every_endpoint_but_the_referral_link_needs_its_key(http: httpx.AsyncClient, api: ApiStack) -> None:
    customer = f"auth-{uuid.uuid4().hex[:6]}"
    body = _event(customer, "nps_response", {"score": 9})
    for path, payload in (("/v1/events", body), ("/v1/track", {"messageId": "m", "userId": customer, "event": "x"}),
                          ("/v1/identify", {"messageId": "m2", "userId": customer}), ("/v1/batch", {"batch": []}),
                          ("/v1/referrals", {"referee_email": "a@b.example", "code": "X"}),
                          ("/v1/crm/deals", {"deal_id": "d", "stage": "won", "code": "X"}),
                          ("/v1/webhooks/sendgrid", [])):  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, READ):
            answer = await http.post(path, json=payload, headers=headers)
            assert answer.status_code == 401, (path, headers, answer.text)
    assert (await http.get(f"/v1/journeys/{customer}")).status_code == 401
    assert (await http.get(f"/v1/journeys/{customer}", headers=WRITE)).status_code == 401
    assert _rows(api, Event, Event.customer_id == customer) == []  # nothing applied


async def test_contract_events_single_and_list_with_a_bad_item(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    customer = f"ev-{uuid.uuid4().hex[:6]}"
    profile = _profile(customer)
    answer = await http.post("/v1/events", json=profile, headers=WRITE)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    batch = [_event(customer, "nps_response", {"score": 10}), _event(customer, "nps_response", {"score": 11}),
             _event(customer, "usage_milestone", {"milestone": "100 projects"})]  # fmt: skip
    answer = await http.post("/v1/events", json=batch, headers=WRITE)
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "accepted": 2, "recorded_only": 0,
                             "errors": [{"index": 1, "field": "data.score", "message": "must be between 0 and 10"}]}  # fmt: skip
    again = await http.post("/v1/events", json=batch, headers=WRITE)  # a retry is harmless
    assert again.json()["accepted"] == 2
    state = await _eventually(lambda: _state_with(http, customer, lambda s: s["events_applied"] == 3))
    assert state["last_nps"] == 10 and state["stage"] in ("qualified", "engaged")
    assert len(_rows(api, Event, Event.customer_id == customer)) == 3
    invalid = await http.post("/v1/events", json=[{"event_id": "x"}], headers=WRITE)
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "customer_id"
    assert (await http.get("/v1/journeys/nobody-here", headers=READ)).status_code == 404


async def _state_with(http: httpx.AsyncClient, customer: str, predicate: Any) -> dict[str, Any] | None:
    answer = await http.get(f"/v1/journeys/{customer}", headers=READ)
    if answer.status_code != 200:
        return None
    state: dict[str, Any] = answer.json()
    return state if predicate(state) else None


def _segment_client(api: ApiStack) -> Any:
    # Queued and sent as one batch on flush, as the client does in production.
    return segment.Client(write_key=WRITE_KEY, host=api.url, max_retries=0, upload_interval=5, upload_size=100)


async def test_the_official_segment_client_starts_and_advances_journeys(http: httpx.AsyncClient, api: ApiStack) -> None:
    customer = f"seg-{uuid.uuid4().hex[:6]}"
    client = _segment_client(api)

    def send() -> None:
        client.identify(customer, {"email": f"{customer}@grace.example", "firstName": "Grace", "lastName": "Hopper",
                                   "company": {"name": "Navy"}, "segment": "enterprise"})  # fmt: skip
        client.track(customer, "NPS Survey Submitted", {"score": 10, "comment": "love it"})
        client.track(customer, "Viewed Pricing Page", {"plan": "pro"})  # unmapped: recorded only
        client.track(customer, "NPS Survey Submitted", {"score": 11})  # invalid: reported, not applied
        client.track(customer, "Milestone Reached", {"milestone": "first dashboard"})
        client.flush()
        client.shutdown()

    await asyncio.to_thread(send)
    state = await _eventually(lambda: _state_with(http, customer, lambda s: s["events_applied"] == 3))
    assert (
        state["last_nps"] == 10 and state["profile"]["name"] == "Grace Hopper" and state["profile"]["company"] == "Navy"
    )
    rows = {e.type: e for e in _rows(api, Event, Event.customer_id == customer)}
    assert set(rows) == {"customer_profile", "nps_response", "usage_milestone", "segment.track"}
    assert rows["segment.track"].data["event"] == "Viewed Pricing Page"
    # The batch answer names the bad item by its index and field.
    batch = {"batch": [
        {"type": "track", "messageId": uuid.uuid4().hex, "userId": customer, "event": "CSAT Survey Submitted", "properties": {"score": 5}},
        {"type": "track", "messageId": uuid.uuid4().hex, "userId": customer, "event": "CSAT Survey Submitted", "properties": {"score": 9}},
        {"type": "track", "userId": customer, "event": "CSAT Survey Submitted"},
    ]}  # fmt: skip
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    answer = await http.post("/v1/batch", json=batch, headers=auth)
    assert answer.status_code == 200
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(1, "data.score"), (2, "messageId")]


async def test_segment_size_limits(http: httpx.AsyncClient) -> None:
    big = {"messageId": "big", "userId": "u", "event": "NPS Survey Submitted", "properties": {"blob": "x" * 40_000}}
    answer = await http.post("/v1/track", json=big, headers=WRITE)
    assert answer.status_code == 400 and "32 KB" in answer.json()["errors"][0]["message"]
    huge = {"batch": [{**big, "messageId": str(i), "properties": {"blob": "x" * 30_000}} for i in range(20)]}
    assert (await http.post("/v1/batch", json=huge, headers=WRITE)).status_code == 413


async def test_one_click_unsubscribe(http: httpx.AsyncClient, api: ApiStack) -> None:
    customer, other = f"un-{uuid.uuid4().hex[:6]}", f"un-{uuid.uuid4().hex[:6]}"
    for c in (customer, other):
        assert (await http.post("/v1/events", json=_profile(c), headers=WRITE)).status_code == 200
    token = unsubscribe_token(customer)
    page = await http.get(f"/u/{token}")
    assert page.status_code == 200 and '<form method="post"' in page.text and customer not in page.text
    for _ in range(2):  # idempotent
        done = await http.post(f"/u/{token}", content="List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert done.status_code == 200 and "unsubscribed" in done.text
    state = await _eventually(lambda: _state_with(http, customer, lambda s: s["opted_out"]))
    assert state["stage"] == "opted_out"
    # Recorded where every send checks it, whatever the journey's state becomes.
    (kept,) = _rows(api, Suppression, Suppression.customer_id == customer)
    assert (kept.scope, kept.key, kept.reason) == ("customer", customer, "unsubscribed")
    _, day, signature = token.split(".")
    forged = base64.urlsafe_b64encode(other.encode()).decode().rstrip("=") + f".{day}.{signature}"
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    expired = unsubscribe_token(other, issued_day=int(day) - 400)
    for bad in (forged, tampered, expired, "garbage", "a.b.c"):
        for method in ("GET", "POST"):
            answer = await http.request(method, f"/u/{bad}")
            assert answer.status_code == 400 and "Traceback" not in answer.text and "<h1" in answer.text
    assert "expired" in (await http.get(f"/u/{expired}")).text
    assert not (await _state_with(http, other, lambda s: True) or {}).get("opted_out")


def _keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def _signed(private: ec.EllipticCurvePrivateKey, body: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = private.sign((ts + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts, "Content-Type": "application/json"}  # fmt: skip


async def test_signed_sendgrid_webhook(env: WorkflowEnvironment, tmp_path: Path) -> None:
    private, public = _keypair()
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"wh-{uuid.uuid4().hex[:8]}",
                     sendgrid_webhook_public_key=public)  # fmt: skip
    await asyncio.to_thread(stack.start)
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            await _webhook_story(http, stack, private, env)
    finally:
        await asyncio.to_thread(stack.stop)


async def _webhook_story(
    http: httpx.AsyncClient, stack: ApiStack, private: ec.EllipticCurvePrivateKey, env: WorkflowEnvironment
) -> None:
    clicker, bouncer, spammer = (f"{k}-{uuid.uuid4().hex[:6]}" for k in ("clk", "bnc", "spm"))
    for c in (clicker, bouncer, spammer):
        await http.post("/v1/events", json=[_profile(c), _event(c, "nps_response", {"score": 10})], headers=WRITE)
    await env.sleep(timedelta(days=3))  # the asks wait for business hours
    for c in (clicker, bouncer, spammer):
        await _eventually(
            lambda c=c: _state_with(http, c, lambda s: s["asks"] and s["asks"][0]["status"] == "sent"), 60
        )
    now = int(time.time())

    def ours(c: str, event: str, **extra: Any) -> dict[str, Any]:
        return {"event": event, "email": f"{c}@{c}.example", "timestamp": now, "sg_event_id": uuid.uuid4().hex,
                "sg_message_id": f"m-{c}", "idempotency_key": f"{c}:review-1:invite", "customer_id": c,
                "ask_id": "review-1", "program": "review", **extra}  # fmt: skip

    events = [ours(clicker, "delivered"), ours(clicker, "click", url="https://x.example/story?utm_source=advocacy&utm_campaign=review"),
              ours(bouncer, "bounce", reason="550 mailbox unavailable"), ours(spammer, "spamreport"),
              {"event": "processed", "email": "someone@else.example", "timestamp": now}]  # fmt: skip
    body = json.dumps(events)
    answer = await http.post("/v1/webhooks/sendgrid", content=body, headers=_signed(private, body))
    assert answer.status_code == 200 and answer.json() == {"accepted": 5, "duplicates": 0, "ignored": 0}
    # Replayed, forged, unsigned and stale posts are refused.
    replay_headers = _signed(private, body, now + 1)  # a new post: the same body, signed at another time
    assert (await http.post("/v1/webhooks/sendgrid", content=body, headers=replay_headers)).status_code == 200
    assert (await http.post("/v1/webhooks/sendgrid", content=body, headers=replay_headers)).status_code == 401
    forger, _ = _keypair()
    assert (await http.post("/v1/webhooks/sendgrid", content=body, headers=_signed(forger, body))).status_code == 401
    assert (
        await http.post("/v1/webhooks/sendgrid", content=body, headers={"Content-Type": "application/json"})
    ).status_code == 401
    assert (
        await http.post("/v1/webhooks/sendgrid", content=body, headers=_signed(private, body, now - 3600))
    ).status_code == 401
    tampered = body.replace("spamreport", "delivered")
    assert (
        await http.post("/v1/webhooks/sendgrid", content=tampered, headers=_signed(private, body))
    ).status_code == 401
    # SendGrid resending the same events (new sg_event_id) is recognised by our keys.
    resent = json.dumps([{**e, "sg_event_id": uuid.uuid4().hex} for e in events])
    again = await http.post("/v1/webhooks/sendgrid", content=resent, headers=_signed(private, resent))
    assert again.json() == {"accepted": 0, "duplicates": 5, "ignored": 0}

    clicked = await _eventually(lambda: _state_with(http, clicker, lambda s: s["asks"][0].get("clicked_at")))
    assert any(sig["event_type"] == "email_click" for sig in clicked["score_log"])
    bounced = await _eventually(lambda: _state_with(http, bouncer, lambda s: s["email_undeliverable"]))
    assert "550 mailbox unavailable" in bounced["email_undeliverable"] and bounced["asks"][0]["status"] == "cancelled"
    opted = await _eventually(lambda: _state_with(http, spammer, lambda s: s["opted_out"]))
    assert opted["stage"] == "opted_out"
    suppressed = {(r.customer_id, r.scope, r.reason) for r in _rows(stack, Suppression)}
    assert suppressed >= {(bouncer, "address", "bounce"), (spammer, "address", "spamreport"),
                          (spammer, "customer", "unsubscribed")}  # fmt: skip
    assert not any(r[0] == clicker for r in suppressed)
    (row,) = _rows(stack, Message, Message.customer_id == clicker, Message.template == "ask_review")
    assert row.delivered_at is not None and row.clicked_at is not None and row.last_event == "click"


async def test_a_webhook_event_that_cannot_reach_its_journey_is_posted_again(
    env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = _keypair()
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"wh-{uuid.uuid4().hex[:8]}",
                     sendgrid_webhook_public_key=public)  # fmt: skip
    await asyncio.to_thread(stack.start)
    real, calls = webhooks._feedback, []

    async def temporal_down_once(d: Any, customer_id: str, feedback: Any) -> None:
        calls.append(feedback.kind)
        if len(calls) == 1:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        await real(d, customer_id, feedback)

    monkeypatch.setattr(webhooks, "_feedback", temporal_down_once)
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            c = f"bnc-{uuid.uuid4().hex[:6]}"
            await http.post("/v1/events", json=[_profile(c)], headers=WRITE)
            await _eventually(lambda: _state_with(http, c, lambda s: s["events_applied"] == 1))
            now = int(time.time())
            events = [{"event": kind, "email": f"{c}@{c}.example", "timestamp": now, "sg_message_id": f"m-{c}",
                       "idempotency_key": f"{c}:review-1:invite", "customer_id": c, "reason": "550 no such user"}
                      for kind in ("delivered", "bounce")]  # fmt: skip
            body = json.dumps(events)
            headers = _signed(private, body)
            first = await http.post("/v1/webhooks/sendgrid", content=body, headers=headers)
            assert first.status_code == 503 and "post again" in first.json()["detail"]
            # SendGrid posts again (here with the very same signature): the bounce is applied this time.
            second = await http.post("/v1/webhooks/sendgrid", content=body, headers=headers)
            assert second.status_code == 200 and second.json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
            state = await _eventually(lambda: _state_with(http, c, lambda s: s["email_undeliverable"]))
            assert "550 no such user" in state["email_undeliverable"] and calls == ["undeliverable", "undeliverable"]
            third = await http.post("/v1/webhooks/sendgrid", content=body, headers=headers)
            assert third.status_code == 401  # now it is a replay
    finally:
        await asyncio.to_thread(stack.stop)


async def test_referral_link_to_reward_the_whole_attribution_chain(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    advocate = f"adv-{uuid.uuid4().hex[:6]}"
    await http.post("/v1/events", json=[_profile(advocate, f"{advocate}@analytical.example"),
                                        _event(advocate, "nps_response", {"score": 10})], headers=WRITE)  # fmt: skip
    state = await _eventually(
        lambda: _state_with(http, advocate, lambda s: s["referral_code"] and s["events_applied"] == 2)
    )
    code = state["referral_code"]
    await _eventually(lambda: _async(_rows(api, Customer, Customer.referral_code == code)))

    # The link: counted once per visitor per day, attribution cookie, 302 with UTM and the code.
    click = await http.get(f"/r/{code}")
    assert click.status_code == 302
    location = click.headers["location"]
    assert location.startswith("https://example.com/welcome?") and f"ref={code}" in location
    assert all(p in location for p in ("utm_source=advocacy", "utm_medium=referral", "utm_campaign=referral"))
    assert "adv_ref" in click.cookies and "adv_vid" in click.cookies
    await http.get(f"/r/{code}")  # same visitor (cookie kept by the client), same day
    assert len(_rows(api, ReferralClick, ReferralClick.code == code)) == 1
    unknown = await http.get("/r/NOSUCHCODE")
    assert unknown.status_code == 302 and "ref=" not in unknown.headers["location"]

    # Refusals, with reasons.
    for email, reason in ((f"{advocate}@analytical.example", "self-referral"), ("boss@analytical.example", "advocate's company"),
                          (f"{advocate}@analytical.example".upper(), "self-referral")):  # fmt: skip
        answer = await http.post("/v1/referrals", json={"referee_email": email, "code": code}, headers=WRITE)
        assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
    # The referral, from the landing page's form: the attribution cookie names the advocate.
    answer = await http.post(
        "/v1/referrals", json={"referee_email": "Pat@Prospect.example", "referee_name": "Pat"}, headers=WRITE
    )
    assert answer.status_code == 201, answer.text
    referral_id = answer.json()["referral_id"]
    twice = await http.post(
        "/v1/referrals", json={"referee_email": "pat@prospect.example", "code": code}, headers=WRITE
    )
    assert twice.status_code == 422

    rows = await _eventually(lambda: _async(_rows(api, ReferralRow, ReferralRow.referral_id == referral_id)))
    assert rows[0].referee_email == "pat@prospect.example"
    already = await http.post(
        "/v1/referrals", json={"referee_email": "pat@prospect.example", "advocate_id": advocate}, headers=WRITE
    )
    assert already.status_code == 422 and "already referred by this advocate" in already.json()["detail"]

    # The CRM: the deal is won (sent twice: one effect), the reward is pending through the hold, then approved.
    deal = {
        "deal_id": "D-1",
        "stage": "won",
        "amount": 12000,
        "currency": "USD",
        "referee_email": "pat@prospect.example",
    }
    first = await http.post("/v1/crm/deals", json=deal, headers=WRITE)
    second = await http.post("/v1/crm/deals", json=deal, headers=WRITE)
    assert first.status_code == 200 and first.json()["duplicate"] is False and second.json()["duplicate"] is True
    assert (
        await http.post("/v1/crm/deals", json={**deal, "referee_email": "nobody@x.example"}, headers=WRITE)
    ).status_code == 404
    state = await _eventually(
        lambda: _state_with(http, advocate, lambda s: any(r["program"] == "referral" for r in s["rewards"]))
    )
    reward = next(r for r in state["rewards"] if r["program"] == "referral" and r["beneficiary"] == "advocate")
    assert reward["status"] == "pending" and reward["amount"] == 360.0  # 3 % of 12,000 beats the $10 flat
    assert state["referrals"][0]["status"] == "won"
    await env.sleep(timedelta(days=31))
    state = await _eventually(
        lambda: _state_with(
            http,
            advocate,
            lambda s: (
                next(r for r in s["rewards"] if r["program"] == "referral" and r["beneficiary"] == "advocate")["status"]
                != "pending"
            ),
        ),
        60,
    )
    assert next(r for r in state["rewards"] if r["reward_id"] == reward["reward_id"])["status"] in (
        "approved",
        "issued",
    )


async def _async(value: Any) -> Any:
    return value


async def test_referrals_per_advocate_per_day_are_capped(http: httpx.AsyncClient, api: ApiStack) -> None:
    # Five: the default playbook's referral_links.max_per_day.
    advocate, _ = await _advocate_with_referrals(http, api, "cap", *(f"p{n}@prospect{n}.example" for n in range(5)))
    refused = await http.post(
        "/v1/referrals", json={"referee_email": "p9@prospect9.example", "advocate_id": advocate}, headers=WRITE
    )
    assert refused.status_code == 422 and "more than 5 referrals per advocate per day" in refused.json()["detail"]
    unknown = await http.post("/v1/referrals", json={"referee_email": "x@y.example", "code": "NOPE"}, headers=WRITE)
    assert unknown.status_code == 404


async def test_a_revoked_referral_code_stops_attributing_until_restored(
    http: httpx.AsyncClient, api: ApiStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    advocate, code = f"rev-{uuid.uuid4().hex[:6]}", f"R{uuid.uuid4().hex[:7].upper()}"
    with database(api.db_url) as sessions, sessions.begin() as session:
        now = datetime.now(timezone.utc)
        session.add(Customer(customer_id=advocate, email=f"{advocate}@x.example", referral_code=code, created_at=now,
                             updated_at=now))  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", api.db_url)

    async def cli(*args: str) -> int:
        return await asyncio.to_thread(starter.main, list(args))

    async def attributed() -> bool:
        http.cookies.clear()
        answer = await http.get(f"/r/{code}")
        assert answer.status_code == 302 and answer.headers["location"].startswith("https://example.com/welcome?")
        return f"ref={code}" in answer.headers["location"] and "adv_ref" in answer.cookies

    assert await attributed()
    assert await cli("revoke-code", advocate) == 0
    assert json.loads(capsys.readouterr().out) == {"customer_id": advocate, "referral_code": code, "status": "revoked",
                                                   "changed": True}  # fmt: skip
    assert not await attributed()
    refused = await http.post(
        "/v1/referrals", json={"referee_email": "p@prospect.example", "code": code}, headers=WRITE
    )
    assert refused.status_code == 404
    assert await cli("revoke-code", advocate) == 0 and '"changed": false' in capsys.readouterr().out
    assert await cli("revoke-code", advocate, "--restore") == 0 and '"status": "active"' in capsys.readouterr().out
    assert await attributed()
    assert await cli("revoke-code", "nobody-at-all") == 1
    assert "no customer 'nobody-at-all'" in capsys.readouterr().err


async def test_events_stored_while_temporal_is_down_are_delivered_later(
    http: httpx.AsyncClient, api: ApiStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = f"out-{uuid.uuid4().hex[:6]}"
    events = [_profile(customer), _event(customer, "nps_response", {"score": 10})]
    real, calls = journeys.send_event, []

    async def temporal_goes_down(*args: Any) -> str:
        calls.append(args)
        if len(calls) > 1:  # the profile gets through, then Temporal is gone
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        return await real(*args)

    monkeypatch.setattr(api_ingest, "send_event", temporal_goes_down)
    down = await http.post("/v1/events", json=events, headers=WRITE)
    assert down.status_code == 503 and down.headers["retry-after"] == "5" and "retry later" in down.json()["detail"]
    unsubscribed = await http.post(f"/u/{unsubscribe_token(customer)}", content="List-Unsubscribe=One-Click",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert unsubscribed.status_code == 200 and "You are unsubscribed" in unsubscribed.text  # stored: it will be applied
    unmapped = {"type": "track", "userId": customer, "event": "Page Scrolled", "messageId": uuid.uuid4().hex}
    assert (await http.post("/v1/track", json=unmapped, auth=(WRITE_KEY, ""))).status_code == 200
    rows = _rows(api, Event, Event.customer_id == customer)
    assert sorted(r.delivery for r in rows) == ["delivered", "pending", "pending", "recorded"]
    assert await _eventually(lambda: _state_with(http, customer, lambda s: s["events_applied"] == 1))

    monkeypatch.setattr(api_ingest, "send_event", real)  # Temporal is back
    monkeypatch.setenv("DATABASE_URL", api.db_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", api.settings.temporal_address)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", api.settings.task_queue)
    assert await asyncio.to_thread(starter.main, ["redeliver", "--older-than", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == {"delivered": 2, "refused": 0}
    state = await _eventually(lambda: _state_with(http, customer, lambda s: s["events_applied"] == 3))
    assert state["opted_out"] and state["last_nps"] == 10 and state["profile"]["name"] == "Ada Lovelace"
    assert sorted(r.delivery for r in _rows(api, Event, Event.customer_id == customer)) == [
        "delivered", "delivered", "delivered", "recorded"]  # fmt: skip
    assert await asyncio.to_thread(starter.main, ["redeliver", "--older-than", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == {"delivered": 0, "refused": 0}


async def test_the_api_relays_pending_events_by_itself(
    env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"relay-{uuid.uuid4().hex[:8]}",
                     app_options={"relay_every": 0.2, "relay_after": timedelta(0)})  # fmt: skip
    real = journeys.send_event

    async def temporal_down(*args: Any) -> str:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    await asyncio.to_thread(stack.start)
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            customer = f"rel-{uuid.uuid4().hex[:6]}"
            monkeypatch.setattr(api_ingest, "send_event", temporal_down)
            assert (await http.post("/v1/events", json=[_profile(customer)], headers=WRITE)).status_code == 503
            monkeypatch.setattr(api_ingest, "send_event", real)
            state = await _eventually(lambda: _state_with(http, customer, lambda s: s["events_applied"] == 1))
            assert state["profile"]["company"] == "Analytical"
            await _eventually(
                lambda: _async(_rows(stack, Event, Event.customer_id == customer, Event.delivery == "delivered"))
            )
    finally:
        await asyncio.to_thread(stack.stop)


async def _advocate_with_referrals(
    http: httpx.AsyncClient, api: ApiStack, prefix: str, *referees: str
) -> tuple[str, str]:
    advocate = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await http.post(
        "/v1/events", json=[_profile(advocate), _event(advocate, "nps_response", {"score": 10})], headers=WRITE
    )
    state = await _eventually(
        lambda: _state_with(http, advocate, lambda s: s["referral_code"] and s["events_applied"] == 2)
    )
    await _eventually(lambda: _async(_rows(api, Customer, Customer.referral_code == state["referral_code"])))
    for referee in referees:
        answer = await http.post(
            "/v1/referrals", json={"referee_email": referee, "advocate_id": advocate}, headers=WRITE
        )
        assert answer.status_code == 201, answer.text
    return advocate, state["referral_code"]  # fmt: skip


async def test_crm_deals_are_refused_with_a_reason_rather_than_guessed(http: httpx.AsyncClient, api: ApiStack) -> None:
    tag = uuid.uuid4().hex[:6]
    pat, sam = f"pat@p-{tag}.example", f"sam@s-{tag}.example"
    advocate, code = await _advocate_with_referrals(http, api, "deal", pat, sam)

    # A deal in yen: no rate in the playbook, so the CRM hears it now (it used to pay 3 % of the yen as dollars).
    yen = await http.post("/v1/crm/deals", json={"deal_id": f"Y-{tag}", "stage": "won", "amount": 30000, "currency": "JPY",
                                                 "referee_email": pat}, headers=WRITE)  # fmt: skip
    assert yen.status_code == 422 and yen.json()["detail"].startswith("currency: no rate for JPY"), yen.text

    # A bad deal stores nothing: its corrected retry is applied, not answered as a duplicate.
    deal = {"deal_id": f"D-{tag}", "stage": "won", "amount": 1000, "referee_email": pat}
    bad = await http.post("/v1/crm/deals", json={**deal, "currency": "US"}, headers=WRITE)
    assert bad.status_code == 422 and "currency" in bad.json()["detail"], bad.text
    good = await http.post("/v1/crm/deals", json={**deal, "currency": "USD"}, headers=WRITE)
    assert good.status_code == 200 and good.json()["duplicate"] is False, good.text

    # Won, refunded, won again under the same deal id: refused with the reason, not dropped as a duplicate.
    refunded = await http.post("/v1/crm/deals", json={**deal, "stage": "refunded"}, headers=WRITE)
    assert refunded.status_code == 200 and refunded.json()["duplicate"] is False
    again = await http.post("/v1/crm/deals", json={**deal, "currency": "USD"}, headers=WRITE)
    assert again.status_code == 409 and "refunded" in again.json()["detail"], again.text

    # Only the advocate's code, and two referrals: ambiguous, never the latest one by guess.
    by_code = await http.post("/v1/crm/deals", json={"deal_id": f"C-{tag}", "stage": "opportunity", "code": code},
                              headers=WRITE)  # fmt: skip
    assert by_code.status_code == 422 and "ambiguous" in by_code.json()["detail"], by_code.text
    named = await http.post("/v1/crm/deals", json={"deal_id": f"C-{tag}", "stage": "opportunity", "code": code,
                                                   "referee_email": sam}, headers=WRITE)  # fmt: skip
    assert named.status_code == 200 and named.json()["advocate_id"] == advocate


async def test_one_referee_sent_by_three_advocates_at_once_is_accepted_once(
    http: httpx.AsyncClient, api: ApiStack
) -> None:
    """Each advocate's API check read "not referred yet" before any journey recorded it: all three were accepted."""
    tag = uuid.uuid4().hex[:6]
    advocates = [(await _advocate_with_referrals(http, api, f"trio{n}"))[0] for n in range(3)]
    spellings = (f"Kim.Lee.{tag}@gmail.com", f"kimlee{tag}+x@googlemail.com", f"kim.lee.{tag}@gmail.com.")
    answers = await asyncio.gather(*(http.post("/v1/referrals", json={"referee_email": email, "advocate_id": advocate},
                                               headers=WRITE) for advocate, email in zip(advocates, spellings, strict=True)))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [201, 422, 422], [a.text for a in answers]
    assert all("already been referred" in a.json()["detail"] for a in answers if a.status_code == 422)
    # An existing customer with a +tag is still a customer.
    customer = advocates[0]
    tagged = f"{customer}+friend@{customer}.example"
    answer = await http.post(
        "/v1/referrals", json={"referee_email": tagged, "advocate_id": advocates[1]}, headers=WRITE
    )
    assert answer.status_code == 422 and "already a customer" in answer.json()["detail"], answer.text


async def test_referral_links_sign_attribution_count_cookieless_visitors_once_and_limit_rates(
    http: httpx.AsyncClient, api: ApiStack
) -> None:
    advocate, other = f"adv-{uuid.uuid4().hex[:6]}", f"adv-{uuid.uuid4().hex[:6]}"
    for c in (advocate, other):
        await http.post("/v1/events", json=_profile(c, f"{c}@analytical-{c}.example"), headers=WRITE)
    codes = {}
    for c in (advocate, other):
        state = await _eventually(lambda c=c: _state_with(http, c, lambda s: s["referral_code"]))
        codes[c] = state["referral_code"]
        await _eventually(lambda c=c: _async(_rows(api, Customer, Customer.referral_code == codes[c])))
    code = codes[advocate]

    # A browser that keeps no cookies (or a script) is one visitor per day, not a new one per click.
    for _ in range(3):
        http.cookies.clear()
        assert (await http.get(f"/r/{code}", headers={"User-Agent": "Mozilla/5.0 kiosk"})).status_code == 302
    assert len(_rows(api, ReferralClick, ReferralClick.code == code)) == 1

    # The attribution cookie is signed: a hand-made one naming another advocate attributes nothing.
    click = await http.get(f"/r/{code}")
    signed = click.cookies["adv_ref"]
    assert signed != code and signed.startswith(f"{code}.")
    http.cookies.clear()
    http.cookies.set("adv_ref", codes[other])
    forged = await http.post("/v1/referrals", json={"referee_email": "sam@prospect-forged.example"}, headers=WRITE)
    assert forged.status_code == 422 and "code or advocate_id" in forged.json()["detail"], forged.text
    http.cookies.set("adv_ref", f"{codes[other]}.{signed.split('.', 1)[1]}")
    tampered = await http.post("/v1/referrals", json={"referee_email": "sam@prospect-forged.example"}, headers=WRITE)
    assert tampered.status_code == 422, tampered.text
    http.cookies.set("adv_ref", signed)
    kept = await http.post("/v1/referrals", json={"referee_email": "sam@prospect-signed.example"}, headers=WRITE)
    assert kept.status_code == 201 and kept.json()["advocate_id"] == advocate, kept.text

    # One address clicking in a loop: still redirected, never an error page, but counted at most so often.
    for n in range(LINK_CLICKS_PER_MINUTE + 20):
        http.cookies.clear()
        answer = await http.get(f"/r/{codes[other]}", headers={"User-Agent": f"bot-{n}"})
        assert answer.status_code == 302
    assert len(_rows(api, ReferralClick, ReferralClick.code == codes[other])) == LINK_CLICKS_PER_MINUTE


async def test_referrals_sent_as_events_or_segment_calls_meet_the_same_rules(
    http: httpx.AsyncClient, api: ApiStack
) -> None:
    first, second, customer = (f"{k}-{uuid.uuid4().hex[:6]}" for k in ("adv", "adv", "cust"))
    for c, email in ((first, f"{first}@works-{first}.example"), (second, f"{second}@works-{second}.example"),
                     (customer, f"kim.lee.{customer}@gmail.com")):  # fmt: skip
        await http.post("/v1/events", json=_profile(c, email), headers=WRITE)
    await _eventually(lambda: _async(_rows(api, Customer, Customer.customer_id == customer)))
    pat = f"pat@prospect-{first}.example"
    assert (await http.post("/v1/referrals", json={"referee_email": pat, "advocate_id": first},
                            headers=WRITE)).status_code == 201  # fmt: skip

    answer = await http.post("/v1/events", headers=WRITE, json=[
        _event(second, "referral_submitted", {"referee_email": pat.upper()}),  # first's referee
        _event(second, "referral_submitted", {"referee_email": f"kimlee.{customer}+x@googlemail.com"}),  # a customer
        _event(second, "referral_submitted", {"referee_email": f"boss@eu.works-{second}.example"}),  # own company
        _event(second, "referral_submitted", {"referee_email": f"new@prospect-{second}.example"}),
    ])  # fmt: skip
    body = answer.json()
    assert body["accepted"] == 1, body
    reasons = {e["index"]: e["message"] for e in body["errors"]}
    assert "already been referred" in reasons[0] and "already a customer" in reasons[1]
    assert "company" in reasons[2] and all(e["field"] == "data.referee_email" for e in body["errors"])

    track = {"messageId": f"m-{uuid.uuid4().hex}", "userId": second, "event": "Referral Submitted",
             "properties": {"referee_email": pat}}  # fmt: skip
    refused = await http.post("/v1/track", json=track, headers=WRITE)
    assert refused.status_code == 400 and "already been referred" in refused.text, refused.text
    state = await _eventually(lambda: _state_with(http, second, lambda s: s["events_applied"] >= 2))
    assert [r["referee_email"] for r in state["referrals"]] == [f"new@prospect-{second}.example"]


async def test_a_referral_with_text_longer_than_its_column_is_refused_naming_the_field(
    http: httpx.AsyncClient, api: ApiStack
) -> None:
    """The referrals table keeps a name and a company of 200 characters: longer is refused, not half-kept."""
    advocate, _ = await _advocate_with_referrals(http, api, "long")
    for field, value in (
        ("referee_name", "n" * 201),
        ("referee_company", "c" * 201),
        ("referee_email", "a" * 320 + "@x.example"),
    ):
        body = {"referee_email": f"pat-{field}@prospect.example", "advocate_id": advocate, field: value}
        answer = await http.post("/v1/referrals", json=body, headers=WRITE)
        assert answer.status_code == 422 and field in answer.text, answer.text
    assert _rows(api, ReferralRow, ReferralRow.customer_id == advocate) == []
