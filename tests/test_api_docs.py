"""The API's docs read on a machine without internet: headless Chromium (Debian's) opens `/docs` with every
request bound off this machine aborted, and finds the endpoints listed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api_stack import ApiStack
from tests.browser import CHROMIUM, OffsiteGuard, launch

SCREENSHOTS = Path("var") / "screenshots"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)")


@pytest.fixture
async def api(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[ApiStack]:
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"docs-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(stack.start)
    yield stack
    await asyncio.to_thread(stack.stop)


async def test_the_api_docs_load_with_no_request_leaving_the_machine(api: ApiStack) -> None:
    from playwright.async_api import async_playwright

    guard = OffsiteGuard()

    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page()
        await page.route("**/*", guard)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            await page.goto(f"{api.url}/docs", wait_until="networkidle")
            # Swagger UI lists every operation as "METHOD path".
            for path in ("/v1/events", "/v1/batch", "/v1/journeys/{customer_id}", "/r/{code}", "/v1/crm/deals"):
                await page.locator(f".opblock-summary-path[data-path='{path}']").first.wait_for(timeout=30_000)
            assert "Advocacy journeys API" in await page.inner_text("body")
            # An operation opens, with its request schema: the whole UI works, not only its first paint.
            await page.locator(".opblock-summary-path[data-path='/v1/events']").first.click()
            await page.get_by_text("Request body").first.wait_for(timeout=10_000)
        finally:
            await page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
            await browser.close()
    assert guard.offsite == [], f"/docs asked the internet for {guard.offsite}"
    assert errors == []


async def test_no_redoc_page_that_would_reach_for_its_cdn(api: ApiStack) -> None:
    # ReDoc's bundle loads its logo from cdn.redoc.ly whatever the page says; Swagger UI at /docs is the docs.
    async with httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/redoc")).status_code == 404
        assert (await http.get("/docs")).status_code == 200
