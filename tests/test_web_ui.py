"""The Temporal Web UI tells a journey's story: headless Chromium (Debian's) driven by Playwright finds a
journey by CustomerId and sees its summary and current details."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.orm import Session, sessionmaker

from client.journeys import get_state, send_event
from plumbing.config import DEMO_PLAYBOOK
from tests.api_stack import free_port
from tests.conftest import start_dev_env
from worker import WorkerParts, build_worker
from workflows.events import iso

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.devserver,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture
async def ui_env() -> AsyncIterator[tuple[object, int]]:

    ui_port = free_port()
    env = await start_dev_env(ui=True, ui_port=ui_port)
    yield env, ui_port
    await env.shutdown()


async def test_a_journey_reads_in_the_web_ui(
    ui_env: tuple[object, int], tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from playwright.async_api import async_playwright
    from temporalio.testing import WorkflowEnvironment

    env, ui_port = ui_env
    assert isinstance(env, WorkflowEnvironment)
    queue, customer = f"ui-{uuid.uuid4().hex[:6]}", f"ui-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, queue, WorkerParts(sessions, DEMO_PLAYBOOK, tmp_path / "outbox")):
        now = iso(await env.get_current_time())
        await send_event(env.client, {"event_id": "p", "customer_id": customer, "type": "customer_profile", "occurred_at": now,
                                      "data": {"email": "grace@navy.example", "name": "Grace Hopper", "company": "Navy",
                                               "segment": "enterprise"}}, queue)  # fmt: skip
        await send_event(env.client, {"event_id": "n", "customer_id": customer, "type": "nps_response", "occurred_at": now,
                                      "data": {"score": 10}}, queue)  # fmt: skip
        deadline = time.monotonic() + 60
        while (await get_state(env.client, customer)).events_applied < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        # Visibility is eventually consistent: wait for the search attribute before opening the browser.
        query = f'CustomerId = "{customer}"'
        while not [wf async for wf in env.client.list_workflows(query)]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = await browser.new_page()
            try:
                base = f"http://127.0.0.1:{ui_port}/namespaces/default"
                await page.goto(f"{base}/workflows?query={quote(query)}", wait_until="networkidle")
                link = page.locator(f'a:has-text("advocacy-{customer}")').first
                await link.wait_for(timeout=30_000)
                await link.click()
                await page.wait_for_load_state("networkidle")
                # Timers and activities carry summaries on the timeline.
                await page.get_by_text("send review ask to").first.wait_for(timeout=30_000)
                # The static summary names the customer id; current details show who, stage, tier, score.
                await page.get_by_text("User Metadata").first.click()
                await page.get_by_text("Current Details").first.wait_for(timeout=30_000)
                # Summaries and details are rendered as markdown in sandboxed frames: read every frame.
                body = ""
                for _ in range(60):
                    body = await _all_text(page)
                    if "last NPS 10" in body:
                        break
                    await asyncio.sleep(0.5)
                assert f"Advocacy journey of customer {customer}" in body
                assert f"Grace Hopper · Navy (customer {customer}) — stage" in body
                assert "tier bronze" in body and "last NPS 10" in body
                assert "Next: " in body
                await page.screenshot(path=str(tmp_path / "journey.png"), full_page=True)
            except Exception:
                await page.screenshot(path=str(Path("var") / "web-ui-failure.png"), full_page=True)
                raise
            finally:
                await browser.close()


async def _all_text(page: Any) -> str:
    texts = []
    for frame in page.frames:
        try:
            texts.append(await frame.inner_text("body", timeout=2_000))
        except Exception:  # a frame that went away while reading
            continue
    return " ".join(" ".join(texts).split())
