"""Story capture on a case-study ask's page: the guided form, stored with the ask (one row however often it is
sent), the team told once, the ask completed once; in the policy, against a real API and journey, and in Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from mail.links import page_token
from mail.lint import sample_variables
from mail.templates import TemplateRenderer
from plumbing.config import DEFAULT_PLAYBOOK, TEMPLATES_DIR
from storage.models import Message, Story
from tests import test_advocate_pages as pages
from tests.api_stack import ApiStack
from tests.browser import OffsiteGuard, launch
from tests.test_advocate_pages import (
    _eventually,
    _has,
    _journey_with_ask,
    _plain_page,
    _rows,
    _state,
    _with_open_ask,
)
from workflows.policy import SendEmail, story_refusal, story_submitted

STORY = {
    "challenge": "Month-end close took nine days.",
    "change": "One ledger for every entity.",
    "results": "Close in 4 days instead of 9.",
    "quote": "We stopped arguing about numbers.",
    "interview_time": "Tuesday mornings, CET",
}
SCREENSHOTS = Path("var") / "screenshots"
# The pages' fixtures, resolved here against this module's playbook.
api = pages.api
http = pages.http


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    """The default playbook, but a promoter is asked for a case study first."""
    raw = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    raw["programs"]["case_study"].update(effort=1, min_completed=0, min_tier="bronze", qualify=[{"promoter": True}])
    raw["programs"]["review"]["effort"] = 3
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ---- in the policy -------------------------------------------------------------------------------------


def test_a_story_completes_its_case_study_ask_once_and_tells_the_team() -> None:
    state, ctx = _journey_with_ask("case_study")
    ask, effects = story_submitted(state, ctx, "case_study-1")
    assert ask is not None and ask.status == "completed" and state.completed == {"case_study": 1}
    team = [e for e in effects if isinstance(e, SendEmail) and e.template == "team_story"]
    assert len(team) == 1 and team[0].to_email == ctx.playbook.team_email and team[0].ask_id == "case_study-1"
    assert any(isinstance(e, SendEmail) and e.template == "thank_you" for e in effects)
    rewards = len(state.rewards)
    again, more = story_submitted(state, ctx, "case_study-1")
    assert more == [] and again is not None and again.status == "completed"
    assert state.completed == {"case_study": 1} and len(state.rewards) == rewards


def test_a_story_for_another_kind_of_ask_is_refused_naming_the_field() -> None:
    state, _ = _journey_with_ask("reference")
    assert story_refusal(state, "nope") == "ask_id: no such ask"
    assert story_refusal(state, "reference-1") == "ask_id: a reference ask takes no story"


def test_the_team_story_template_shows_every_answer() -> None:
    out = TemplateRenderer(TEMPLATES_DIR).render("team_story", "en", sample_variables("team_story"))
    for text in ("nine days", "Close in 4 days", "started using them", "Tuesday or Thursday", "ask-sample"):
        assert text in out.text and text in out.html
    assert "unsubscribe" not in out.text.lower()


# ---- against a running API and journey ---------------------------------------------------------------


async def _story_page(http: httpx.AsyncClient, env: WorkflowEnvironment, api: ApiStack) -> tuple[str, str, str, str]:
    customer = await _with_open_ask(http, env, api, "story")
    state = await _state(http, customer)
    assert state is not None and state["asks"][0]["program"] == "case_study"
    ask_id, token = state["asks"][0]["ask_id"], page_token(customer, "advocate")
    page = await http.get(f"/a/{token}/asks/{ask_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None and "Results, with numbers" in page.text
    return customer, ask_id, token, csrf.group(1)


async def test_a_story_form_refuses_bad_answers_next_to_the_field_and_stores_nothing(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    customer, ask_id, token, csrf = await _story_page(http, env, api)
    # The advocate's home leads to the form too.
    home = await http.get(f"/a/{token}")
    assert re.search(rf'<a class="button" href="/a/{re.escape(token)}/asks/{ask_id}">Tell your story</a>', home.text)
    url = f"/a/{token}/asks/{ask_id}/story"
    answer = await http.post(url, data={"csrf": csrf, **STORY, "results": "much faster", "quote": "q" * 1001})
    assert answer.status_code == 422
    assert 'id="results-error"' in answer.text and "at least one number" in answer.text
    assert 'id="quote-error"' in answer.text and "1000 characters" in answer.text
    assert "Month-end close took nine days." in answer.text  # the typing is kept
    _plain_page(await http.post(url, data={**STORY}), 400, "This form has expired")
    assert _rows(api, Story, Story.customer_id == customer) == []
    assert (await _state(http, customer) or {})["asks"][0]["status"] == "sent"
    # No story for an ask that is not a case study's.
    _plain_page(await http.post(f"/a/{token}/asks/nope/story", data={"csrf": csrf, **STORY}), 404, "asks for no story")


async def test_the_story_form_in_a_browser_completes_the_ask_once(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    customer, ask_id, token, _ = await _story_page(http, env, api)
    guard = OffsiteGuard()

    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page(java_script_enabled=False)
        second = await browser.new_page(java_script_enabled=False)  # the same form, open in another tab
        for tab in (page, second):
            await tab.route("**/*", guard)
            await tab.goto(f"{api.url}/a/{token}/asks/{ask_id}")
        try:
            assert "Tell your story?" in await page.inner_text("h1")
            for name, value in STORY.items():
                await page.fill(f"#{name}", value)
            await page.check("#may_name")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # docs/advocate-story-form.png is a copy of it
            await page.screenshot(path=str(SCREENSHOTS / "advocate-story-form.png"), full_page=True)
            await page.click("button:has-text('Send my story')")
            assert "Thank you for your story" in await page.inner_text("h1")
            done = await _has(http, customer, lambda s: s["asks"][0]["status"] == "completed")
            assert done is not None and done["completed"] == {"case_study": 1}

            # Sent again from the other tab, with a change: the story is updated, the ask stays completed once.
            for name, value in STORY.items():
                await second.fill(f"#{name}", value)
            await second.fill("#results", "Close in 3 days instead of 9.")
            await second.click("button:has-text('Send my story')")
            assert "Your story is updated" in await second.inner_text("h1")
        except Exception:
            await page.screenshot(path=str(tmp_path / "story-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
    assert guard.offsite == []
    again = await _state(http, customer)
    assert again is not None and again["completed"] == done["completed"] and again["rewards"] == done["rewards"]
    assert [a["status"] for a in again["asks"]] == ["completed"]
    stories = _rows(api, Story, Story.customer_id == customer)
    assert [(s.ask_id, s.results, s.may_name, s.submissions) for s in stories] == [
        (ask_id, "Close in 3 days instead of 9.", False, 2)
    ]
    # The team got the story once, with the answers as first told; the customer got one thank-you.
    team: list[Any] = await _eventually(
        lambda: _async_rows(api, Message, Message.customer_id == customer, Message.template == "team_story")
    )
    assert len(team) == 1 and team[0].to_email == "advocacy-team@example.com"
    assert "Close in 4 days instead of 9." in team[0].text and "yes, we may use them" in team[0].text
    thanks = _rows(api, Message, Message.customer_id == customer, Message.template == "thank_you")
    assert len(thanks) == 1


async def _async_rows(stack: ApiStack, model: Any, *where: Any) -> list[Any]:
    return _rows(stack, model, *where)
