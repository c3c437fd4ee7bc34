"""Prometheus metrics (the SDK's and the product's on one endpoint), JSON logs, and no PII in logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from plumbing.converter import data_converter
from plumbing.telemetry import JsonFormatter
from tests.api_stack import free_port
from tests.conftest import TEST_SERVER, Harness, register_search_attributes, running_worker


async def test_product_and_sdk_metrics_on_one_prometheus_endpoint(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    port = free_port()
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=data_converter(), runtime=runtime
    )
    await register_search_attributes(env.client)
    try:
        async with running_worker(env, tmp_path, sessions) as h:
            c = h.cid("metrics")
            await h.profile(c, segment="enterprise")
            await h.send(c, "nps_response", {"score": 10})
            await h.sleep(days=3)
            await h.send(c, "review_submitted", {"site": "g2", "rating": 5})
            await h.sleep(hours=1)
            assert (await h.state(c)).rewards
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        await env.shutdown()
    lines = text.splitlines()

    def value(name: str, *labels: str) -> float:
        found = [ln for ln in lines if ln.startswith(name + "{") and all(lb in ln for lb in labels)]
        assert found, f"{name} {labels} not exported"
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in found)

    assert value("advocacy_events_applied", 'type="nps_response"') == 1
    assert value("advocacy_events_applied", 'type="customer_profile"') == 1
    assert value("advocacy_asks_sent", 'program="review"') == 1
    assert value("advocacy_emails_sent", 'template="ask_review"') == 1
    assert value("advocacy_rewards", 'status="pending"') == 1
    assert value("advocacy_reward_amount_cents", 'status="issued"', 'currency="USD"') == 2500
    assert any(ln.startswith("temporal_workflow_completed") or ln.startswith("temporal_workflow_task") for ln in lines)


def test_json_logs_carry_ids() -> None:
    record = logging.LogRecord("advocacy", logging.WARNING, __file__, 1, "rejected event: %s", ("data.score",), None)
    record.temporal_workflow = {"workflow_id": "advocacy-c-42", "workflow_type": "AdvocacyJourney"}
    record.ask_id = "review-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "rejected event: data.score" and entry["level"] == "warning"
    assert (entry["workflow_id"], entry["customer_id"], entry["ask_id"]) == ("advocacy-c-42", "c-42", "review-1")


async def test_no_pii_in_logs(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h, c = harness, harness.cid("quiet")
    email, name = f"{c}@acme-{c}.test", "Ada Lovelace"
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.send(c, "referral_submitted", {"referee_email": email})  # refused as self-referral
    await h.sleep(days=3)
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + json.dumps(record.__dict__, default=str)
        assert email not in text and name not in text, record.getMessage()
