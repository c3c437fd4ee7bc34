"""The preferences section of the advocate's page, in headless Chromium against a real API and journey: how
often, which programs, a pause; the journey's state changes at once; the same form twice changes nothing twice."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from mail.links import page_token
from tests.api_stack import ApiStack
from tests.browser import OffsiteGuard, launch
from tests.test_advocate_pages import _eventually, _has, _state, _with_open_ask, api, http, playbook

__all__ = ["api", "http", "playbook"]  # the fixtures these tests use


async def test_preferences_set_on_the_page_reach_the_journey(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    customer = await _with_open_ask(http, env, api, "prefs")
    token = page_token(customer, "advocate")
    guard = OffsiteGuard()

    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page(java_script_enabled=False)
        await page.route("**/*", guard)
        try:
            await page.goto(f"{api.url}/a/{token}")
            section = page.locator("#preferences")
            assert "Your preferences" in await section.inner_text()
            assert await page.is_checked("input[name=frequency][value=program]")
            assert await page.is_checked("input[name=program-referral]")

            # A pause until a date needs the date: said next to the field, the other choices kept.
            await page.check("input[name=frequency][value=quarterly]")
            await page.uncheck("input[name=program-referral]")
            await page.check("#pause-until-choice")
            await page.click("button:has-text('Save preferences')")
            assert await page.inner_text("#pause_until-error") == "Please enter a date, like 2027-03-31."
            assert await page.is_checked("input[name=frequency][value=quarterly]")
            assert not await page.is_checked("input[name=program-referral]")
            unchanged = await _state(http, customer)
            assert unchanged is not None and unchanged["preferences"]["frequency"] == "program"

            await page.check("input[name=pause][value='3']")
            await page.click("button:has-text('Save preferences')")
            assert "Your preferences are saved" in await page.inner_text("h1")
            text = await page.inner_text("body")
            assert "at most once a quarter" in text and "refer a colleague" in text and "No requests until" in text
            state = await _state(http, customer)
            assert state is not None
            prefs = state["preferences"]
            assert prefs["frequency"] == "quarterly" and prefs["skip_programs"] == ["referral"]
            assert prefs["paused_until"] and state["ask_outlook"].startswith("not asking: paused by the customer")
            assert state["asks"][0]["status"] == "cancelled"  # the open ask: no reminder during the break

            # Back on the page, the section shows what was chosen; saving it again changes nothing.
            await page.click("text=Back to your page")
            assert f"no requests until {prefs['paused_until'][:10]}" in await section.inner_text()
            assert await page.is_checked("input[name=pause][value=keep]")
            await section.screenshot(path=str(tmp_path / "advocate-preferences.png"))
            await page.click("button:has-text('Save preferences')")
            assert "Nothing to change" in await page.inner_text("h1")
            again = await _state(http, customer)
            assert again is not None and again["preferences"] == prefs and again["score_log"] == state["score_log"]

            # Unsubscribe leads to the one-click flow: its page asks first (a mail scanner changes nothing).
            await page.click("text=Back to your page")
            await page.click("text=Unsubscribe from advocacy emails")
            assert "Unsubscribe from our advocacy emails?" in await page.inner_text("h1")
            assert (await _state(http, customer) or {})["opted_out"] is False
            await page.click("button:has-text('Unsubscribe')")
            assert "You are unsubscribed" in await page.inner_text("h1")
            await _eventually(lambda: _has(http, customer, lambda s: s["opted_out"]))
        except Exception:
            await page.screenshot(path=str(tmp_path / "preferences-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
    assert guard.offsite == []


async def test_a_preferences_form_the_journey_cannot_take_is_refused_next_to_the_field(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    customer = await _with_open_ask(http, env, api, "badprefs")
    token = page_token(customer, "advocate")
    home = await http.get(f"/a/{token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert home.status_code == 200 and csrf is not None and 'id="preferences"' in home.text
    url = f"/a/{token}/preferences"
    far = (date.today() + timedelta(days=400)).isoformat()
    for form, error in (
        ({"frequency": "weekly", "pause": "none"}, "Please choose how often we may ask."),
        ({"frequency": "monthly", "pause": "until", "pause_until": "next week"}, "Please enter a date, like"),
        ({"frequency": "monthly", "pause": "until", "pause_until": "2020-01-01"}, "Please choose a date after today."),
        ({"frequency": "monthly", "pause": "until", "pause_until": far}, "Please choose a date within a year"),
        ({"frequency": "monthly", "pause": "forever"}, "Please choose whether to pause."),
    ):
        answer = await http.post(url, data={"csrf": csrf.group(1), **form})
        assert answer.status_code == 422 and error in answer.text, (form, answer.text[-500:])
    # Without its CSRF token (a forged form) nothing changes either.
    assert (await http.post(url, data={"frequency": "monthly", "pause": "none"})).status_code == 400
    state = await _state(http, customer)
    assert state is not None and state["preferences"]["frequency"] == "program" and state["asks"][0]["status"] == "sent"
