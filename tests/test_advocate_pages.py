"""Advocate pages (`/a/{token}`): signed purpose-bound tokens, the home page, the referral form and answers to
asks, against a real API and real journeys (time-skipping server), and in headless Chromium."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.email import Company, template_variables
from activities.playbook import read_playbook
from api.advocate import FORM_POSTS_PER_MINUTE, _share_links
from client.events import new_event
from mail.links import (
    PAGE_TOKEN_MAX_AGE_DAYS,
    TokenError,
    csrf_token,
    page_token,
    unsubscribe_token,
    verify_csrf_token,
    verify_page_token,
    verify_unsubscribe_token,
)
from mail.lint import check, is_internal
from mail.templates import TemplateRenderer
from plumbing.config import DEFAULT_PLAYBOOK, TEMPLATES_DIR
from storage.db import database
from storage.models import Customer, ReferralClick, ReferralRow
from tests.api_stack import READ_KEY, WRITE_KEY, ApiStack
from tests.browser import OffsiteGuard, launch
from workflows.model import Ask, JourneyState, Profile, SendEmailInput
from workflows.policy import Policy, RecordAsk, SendEmail, answer_ask, answer_refusal, every_fix

WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
SECRET = "s" * 8 + "0123456789abcdefghijklmnopqrstuv"
TODAY = int(time.time() // 86400)


def test_a_page_token_names_its_customer_and_purpose() -> None:
    token = page_token("c-1", "advocate", SECRET)
    assert verify_page_token(token, "advocate", SECRET) == "c-1"
    assert "c-1" not in token  # the id is encoded, and no address or name is in a link


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "a.b.c",
        "YS0x.12.0123456789abcdef0123456789abcdef",  # well-formed, signed by no one
        f"YS0x.{TODAY}.0123456789abcdef0123456789abcdeg",  # not hex
        f"!!!.{TODAY}.0123456789abcdef0123456789abcdef",
        "YS0x.²3.0123456789abcdef0123456789abcdef",
    ],
)
def test_a_forged_or_malformed_page_token_is_refused(token: str) -> None:
    with pytest.raises(TokenError, match="not a valid link"):
        verify_page_token(token, "advocate", SECRET)


def test_a_page_token_for_another_customer_does_not_exist() -> None:
    token = page_token("c-1", "advocate", SECRET)
    _, day, signature = token.split(".")
    other = page_token("c-2", "advocate", SECRET).split(".")[0]
    with pytest.raises(TokenError):
        verify_page_token(f"{other}.{day}.{signature}", "advocate", SECRET)


def test_a_token_made_for_one_purpose_opens_nothing_else() -> None:
    with pytest.raises(TokenError):  # an unsubscribe link's token is no page token
        verify_page_token(unsubscribe_token("c-1", SECRET), "advocate", SECRET)
    with pytest.raises(TokenError):  # and a page token unsubscribes no one
        verify_unsubscribe_token(page_token("c-1", "advocate", SECRET), SECRET)
    with pytest.raises(TokenError):
        verify_page_token(page_token("c-1", "advocate", SECRET), "unsubscribe", SECRET)
    with pytest.raises(ValueError, match="purpose"):
        page_token("c-1", "unsubscribe", SECRET)


def test_a_page_token_expires_and_another_secret_refuses_it() -> None:
    old = page_token("c-1", "advocate", SECRET, issued_day=TODAY - PAGE_TOKEN_MAX_AGE_DAYS)
    assert verify_page_token(old, "advocate", SECRET) == "c-1"
    older = page_token("c-1", "advocate", SECRET, issued_day=TODAY - PAGE_TOKEN_MAX_AGE_DAYS - 1)
    with pytest.raises(TokenError, match="expired"):
        verify_page_token(older, "advocate", SECRET)
    with pytest.raises(TokenError, match="not a valid link"):
        verify_page_token(page_token("c-1", "advocate", SECRET), "advocate", SECRET[::-1])


def test_a_csrf_token_is_bound_to_its_customer_and_a_day() -> None:
    token = csrf_token("c-1", SECRET)
    assert verify_csrf_token(token, "c-1", SECRET)
    assert not verify_csrf_token(token, "c-2", SECRET)
    assert not verify_csrf_token(token, "c-1", SECRET[::-1])
    assert not verify_csrf_token(csrf_token("c-1", SECRET, issued=int(time.time()) - 86401), "c-1", SECRET)
    assert not verify_csrf_token("", "c-1", SECRET) and not verify_csrf_token("1.2", "c-1", SECRET)


# ---- answers, in the policy ----------------------------------------------------------------------------


def _journey_with_ask(program: str) -> tuple[JourneyState, Policy]:
    ctx = Policy(playbook=read_playbook(DEFAULT_PLAYBOOK), now=datetime(2026, 6, 1, tzinfo=timezone.utc),
                 patched=every_fix)  # fmt: skip
    state = JourneyState(customer_id="c-1", profile=Profile(email="ada@analytical.example", name="Ada"))
    state.asks.append(Ask(ask_id=f"{program}-1", program=program, status="sent", created_at="2026-05-30T15:00:00Z",
                          sent_at="2026-05-30T15:00:00Z"))  # fmt: skip
    return state, ctx


@pytest.mark.parametrize("program", ["reference", "speaking", "advisory_board"])
def test_accepting_an_ask_completes_it_once(program: str) -> None:
    state, ctx = _journey_with_ask(program)
    ask, effects = answer_ask(state, ctx, f"{program}-1", accepted=True)
    assert ask is not None and ask.status == "completed" and state.completed == {program: 1}
    assert any(isinstance(e, SendEmail) and e.template == "thank_you" for e in effects)
    rewards = len(state.rewards)
    for accepted in (True, False):  # the same click again, or a change of mind: nothing changes twice
        again, more = answer_ask(state, ctx, f"{program}-1", accepted=accepted)
        assert more == [] and again is not None and again.status == "completed"
    assert state.completed == {program: 1} and len(state.rewards) == rewards


@pytest.mark.parametrize("program", ["review", "reference", "case_study", "advisory_board"])
def test_declining_an_ask_closes_it_with_the_cooldown(program: str) -> None:
    state, ctx = _journey_with_ask(program)
    ask, effects = answer_ask(state, ctx, f"{program}-1", accepted=False)
    assert ask is not None and ask.status == "declined" and state.cooldown_until is not None
    assert [type(e) for e in effects] == [RecordAsk] and state.completed == {}
    assert answer_ask(state, ctx, f"{program}-1", accepted=True)[1] == []


def test_an_answer_the_journey_cannot_take_is_refused_with_the_field() -> None:
    state, _ = _journey_with_ask("review")
    assert answer_refusal(state, "nope", accepted=False) == "ask_id: no such ask"
    refusal = answer_refusal(state, "review-1", accepted=True)
    assert refusal is not None and refusal.startswith("accepted: a review ask is done by doing it")


# ---- the pages, against a running API ------------------------------------------------------------------


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    """The default playbook, but a promoter is asked for a reference first (so a test need not climb the ladder)."""
    raw = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    raw["programs"]["reference"].update(effort=1, min_completed=0)
    raw["programs"]["review"]["effort"] = 3
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
async def api(env: WorkflowEnvironment, tmp_path: Path, playbook: Path) -> AsyncIterator[ApiStack]:
    stack = ApiStack(env.client.service_client.config.target_host, tmp_path, f"pages-{uuid.uuid4().hex[:8]}",
                     playbook_path=playbook, company_name="Orbital Widgets")  # fmt: skip
    await asyncio.to_thread(stack.start)
    yield stack
    await asyncio.to_thread(stack.stop)


@pytest.fixture
async def http(api: ApiStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        yield client


async def _state(http: httpx.AsyncClient, customer: str) -> dict[str, Any] | None:
    answer = await http.get(f"/v1/journeys/{customer}", headers=READ)
    return answer.json() if answer.status_code == 200 else None


async def _eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def _with_open_ask(http: httpx.AsyncClient, env: WorkflowEnvironment, api: ApiStack, prefix: str) -> str:
    """A promoter whose reference ask was sent, with the profile row the referral rules read."""
    customer = f"{prefix}-{uuid.uuid4().hex[:6]}"
    events = [
        new_event(customer, "customer_profile", {"email": f"ada@{customer}.example", "name": "Ada Lovelace",
                                                 "company": "Analytical", "segment": "enterprise"}),
        new_event(customer, "nps_response", {"score": 10}),
    ]  # fmt: skip
    assert (await http.post("/v1/events", json=events, headers=WRITE)).status_code == 200
    await _eventually(lambda: _has(http, customer, lambda s: s["events_applied"] == 2))
    await env.sleep(timedelta(days=3))  # the ask waits for business hours
    await _eventually(lambda: _has(http, customer, lambda s: s["asks"] and s["asks"][0]["status"] == "sent"))
    return customer


async def _has(http: httpx.AsyncClient, customer: str, predicate: Any) -> dict[str, Any] | None:
    state = await _state(http, customer)
    return state if state is not None and predicate(state) else None


def _plain_page(answer: httpx.Response, status: int, title: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert title in answer.text and "Traceback" not in answer.text and "<script" not in answer.text


async def test_forged_expired_and_borrowed_links_get_a_plain_page(http: httpx.AsyncClient) -> None:
    token = page_token("c-pages", "advocate")
    payload, day, signature = token.split(".")
    other = page_token("c-other", "advocate").split(".")[0]
    expired = page_token("c-pages", "advocate", issued_day=TODAY - PAGE_TOKEN_MAX_AGE_DAYS - 1)
    for bad in ("forged", f"{other}.{day}.{signature}", unsubscribe_token("c-pages"), f"{payload}.{day}.{'0' * 32}"):
        _plain_page(await http.get(f"/a/{bad}"), 400, "This link does not work")
        _plain_page(await http.get(f"/a/{bad}/asks/reference-1"), 400, "This link does not work")
        _plain_page(await http.post(f"/a/{bad}/referrals", data={"email": "x@y.example"}), 400, "does not work")
    _plain_page(await http.get(f"/a/{expired}"), 400, "has expired")
    # A page token does not unsubscribe anyone.
    _plain_page(await http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}), 400, "does not work")
    # A valid link for a customer without a journey: a plain page too.
    _plain_page(await http.get(f"/a/{token}"), 404, "Nothing here yet")
    # A form without its CSRF token changes nothing (and says so).
    _plain_page(await http.post(f"/a/{token}/referrals", data={"email": "x@y.example"}), 400, "This form has expired")


async def test_every_ask_email_link_leads_to_a_page(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment, playbook: Path
) -> None:
    customer = await _with_open_ask(http, env, api, "links")
    state = await _state(http, customer)
    assert state is not None
    ask = state["asks"][0]
    renderer = TemplateRenderer(TEMPLATES_DIR)
    external = {p.link for p in read_playbook(playbook).programs if p.link}
    followed = 0
    for name in renderer.catalog():
        if is_internal(name):
            continue
        program = name.removeprefix("ask_") if name.startswith("ask_") else ask["program"]
        email = SendEmailInput(idempotency_key=f"{customer}:{name}", customer_id=customer, template=name,
                               to_email=f"ada@{customer}.example", ask_id=ask["ask_id"], program=program,
                               context={"customer": {"customer_id": customer, "name": "Ada Lovelace", "first_name": "Ada", "company": "Analytical", "email": f"ada@{customer}.example"},
                                        "referral_code": state["referral_code"],
                "reward": {"amount": 100.0, "currency": "USD", "kind": "credit", "program": program},
                                        "link": read_playbook(playbook).program(program).link})  # fmt: skip
        variables = template_variables(email, Company(name="Orbital Widgets", public_base_url=api.url))
        rendered = renderer.render(name, "en", variables)
        links = set(re.findall(r'href="([^"]+)"', rendered.html)) | set(re.findall(r"https?://\S+", rendered.text))
        for link in sorted(html.unescape(u) for u in links):
            if not link.startswith(api.url):
                assert link.split("?")[0] in external, f"{name}: {link}"
                continue
            answer = await http.get(link.removeprefix(api.url), follow_redirects=False)
            assert answer.status_code in (200, 302, 303), f"{name}: {link} -> {answer.status_code}"
            followed += 1
    assert followed >= 20
    # Following every link (as a mail scanner does) changed nothing.
    after = await _state(http, customer)
    assert after is not None and after["asks"] == state["asks"] and after["opted_out"] is False


async def test_the_advocate_page_in_a_browser_refers_a_colleague_and_accepts_an_ask(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    customer = await _with_open_ask(http, env, api, "page")
    state = await _state(http, customer)
    assert state is not None
    ask_id = state["asks"][0]["ask_id"]
    await _eventually(lambda: _async(_rows(api, Customer, Customer.customer_id == customer)))
    token = page_token(customer, "advocate")
    guard = OffsiteGuard()

    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page(java_script_enabled=False)  # it works without JavaScript
        await page.route("**/*", guard)
        try:
            await page.goto(f"{api.url}/a/{token}")
            body = await page.inner_text("body")
            assert "Orbital Widgets" in body and "Hi Ada" in body and "Take a reference call" in body
            link = await page.input_value("#referral-link")
            assert f"/r/{state['referral_code']}?" in link and "utm_source=advocacy" in link
            share = await page.get_attribute("a:has-text('LinkedIn')", "href")
            assert share is not None and "linkedin.com" in share and "utm_content%3Dlinkedin" in share
            await page.screenshot(path=str(tmp_path / "advocate-page.png"), full_page=True)

            # Refused as POST /v1/referrals refuses: the sentence sits next to the field, the typing is kept.
            await page.fill("#name", "Ada Herself")
            await page.fill("#email", f"ADA+friend@{customer}.example")
            await page.click("button:has-text('Send referral')")
            assert (await page.inner_text("#email-error")).startswith("Self-referral")
            assert await page.input_value("#name") == "Ada Herself"

            await page.fill("#name", "Pat Prospect")
            await page.fill("#email", "pat@prospect.example")
            await page.fill("#company", "Prospect Ltd")
            await page.click("button:has-text('Send referral')")
            assert "Thank you for the referral" in await page.inner_text("h1")
            referred = await _eventually(lambda: _has(http, customer, lambda s: s["referrals"]))
            assert referred["referrals"][0]["referee_email"] == "pat@prospect.example"
            assert referred["referrals"][0]["referee_name"] == "Pat Prospect"

            await page.click("text=Back to your page")
            assert "Pat Prospect" in await page.inner_text("body")
            # The ask email's button: its page shows the answers, and opening it (a mail scanner does) changes nothing.
            email_button = await browser.new_page(java_script_enabled=False)
            await email_button.route("**/*", guard)
            await email_button.goto(f"{api.url}/a/{token}/asks/{ask_id}?utm_source=advocacy")
            assert "Take a reference call?" in await email_button.inner_text("h1")
            assert (await _state(http, customer) or {})["asks"][0]["status"] == "sent"

            await page.click(f"#ask-{ask_id} button:has-text('Yes, count me in')")
            assert "Thank you!" in await page.inner_text("h1")
            # Completed at once; the reward (no hold) is issued after the thanks and the team's email.
            assert await _has(http, customer, lambda s: s["asks"][0]["status"] == "completed")
            done = await _eventually(lambda: _has(http, customer, lambda s: [(r["program"], r["status"]) for r in s[
                "rewards"]] == [("reference", "issued")]))  # fmt: skip

            # The same answer again, from the email's page: nothing changes twice.
            await email_button.click("button:has-text('Yes, count me in')")
            assert "Already answered" in await email_button.inner_text("h1")
            again = await _state(http, customer)
            # (a reward may move on from approved to issued meanwhile: the same rewards, no new one)
            ids = [(r["reward_id"], r["amount"]) for r in done["rewards"]]
            assert again is not None and [(r["reward_id"], r["amount"]) for r in again["rewards"]] == ids
            assert again["completed"] == done["completed"]
        except Exception:
            await page.screenshot(path=str(tmp_path / "advocate-page-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()
    assert guard.offsite == []
    # The advocate never went through their own referral link: no click counted for them.
    assert _rows(api, ReferralClick, ReferralClick.customer_id == customer) == []


async def test_a_referral_form_post_is_rate_limited(http: httpx.AsyncClient) -> None:
    token = page_token("c-limited", "advocate")
    csrf = csrf_token("c-limited")
    answers = [
        (await http.post(f"/a/{token}/referrals", data={"csrf": csrf, "email": ""})).status_code
        for _ in range(FORM_POSTS_PER_MINUTE + 1)
    ]
    assert answers[-1] == 429 and 429 not in answers[:-1]


async def _async(value: Any) -> Any:
    return value


def _rows(api: ApiStack, model: Any, *where: Any) -> list[Any]:
    with database(api.db_url) as sessions, sessions() as session:
        return list(session.scalars(select(model).where(*where)))


def test_templates_check_refuses_a_link_to_a_path_the_api_does_not_serve(tmp_path: Path) -> None:
    templates = Path(shutil.copytree(TEMPLATES_DIR, tmp_path / "templates"))
    utm = "utm_source=advocacy&amp;utm_medium=email&amp;utm_campaign=reference"
    html_file = templates / "ask_reference.html.j2"
    html_file.write_text(html_file.read_text().replace(
        "{{ links.activation }}", f"{{{{ company.website }}}}/story/{{{{ customer.customer_id }}}}?{utm}"))  # fmt: skip
    text_file = templates / "ask_reference.txt.j2"
    text_file.write_text(text_file.read_text().replace("{{ links.activation }}", "{{ company.website }}/stories"))
    errors = [str(p) for p in check(TemplateRenderer(templates)) if p.severity == "error"]
    assert any(
        e.startswith("ask_reference.html.j2:7: error: link ") and "/story/c-sample" in e and "no page at" in e
        for e in errors
    ), errors
    assert any(e.startswith("ask_reference.txt.j2") and "/stories" in e and "no page at" in e for e in errors), errors
    # The shipped templates link only to pages the API serves.
    assert not [p for p in check(TemplateRenderer(TEMPLATES_DIR)) if "no page at" in p.reason]


async def test_an_ask_declined_from_its_page_reaches_the_journey_once(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    customer = await _with_open_ask(http, env, api, "decline")
    state = await _state(http, customer)
    assert state is not None
    ask_id, token = state["asks"][0]["ask_id"], page_token(customer, "advocate")
    page = await http.get(f"/a/{token}/asks/{ask_id}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None
    url = f"/a/{token}/asks/{ask_id}"
    _plain_page(await http.post(url, data={"csrf": csrf.group(1), "answer": "maybe"}), 422, "Please choose an answer")
    _plain_page(
        await http.post(url, data={"csrf": csrf.group(1), "answer": "decline"}), 200, "Thanks for letting us know"
    )
    declined = await _state(http, customer)
    assert declined is not None and declined["asks"][0]["status"] == "declined" and declined["cooldown_until"]
    for answer in ("decline", "accept"):
        _plain_page(await http.post(url, data={"csrf": csrf.group(1), "answer": answer}), 200, "Already answered")
    after = await _state(http, customer)
    assert after is not None and after["asks"] == declined["asks"] and after["completed"] == {}
    # An unknown ask is refused by the journey's validator, in a sentence.
    _plain_page(await http.post(f"/a/{token}/asks/nope", data={"csrf": csrf.group(1), "answer": "decline"}), 422,
                "No such ask")  # fmt: skip
    # An ask that is no longer open: its email's button leads to the advocate's page.
    assert (await http.get(url)).status_code == 303


async def test_the_referral_form_keeps_role_and_a_note_for_sales_on_the_referral_record(
    http: httpx.AsyncClient, api: ApiStack, env: WorkflowEnvironment
) -> None:
    customer = await _with_open_ask(http, env, api, "note")
    await _eventually(lambda: _async(_rows(api, Customer, Customer.customer_id == customer)))
    token = page_token(customer, "advocate")
    csrf = csrf_token(customer)
    url = f"/a/{token}/referrals"
    form = {"csrf": csrf, "name": "Pat Prospect", "email": "pat@prospect.example", "company": "Prospect Ltd"}
    # Too long: refused next to the field, the typing kept, nothing submitted.
    answer = await http.post(url, data={**form, "role": "r" * 201, "note": "n" * 1001})
    assert answer.status_code == 422
    assert 'id="role-error"' in answer.text and "200 characters" in answer.text
    assert 'id="note-error"' in answer.text and "1000 characters" in answer.text
    assert ("n" * 1001) in answer.text
    assert (await _state(http, customer) or {})["referrals"] == []

    note = "Evaluating tools this quarter; prefers email, not calls."
    _plain_page(await http.post(url, data={**form, "role": "Head of Finance", "note": note}), 200,
                "Thank you for the referral")  # fmt: skip
    rows = await _eventually(
        # The journey's own record of the referral (with the name) follows the API's at once: wait for both.
        lambda: _async(
            _rows(
                api,
                ReferralRow,
                ReferralRow.customer_id == customer,
                ReferralRow.status == "submitted",
                ReferralRow.referee_name.is_not(None),
            )
        )
    )
    assert [(r.referee_email, r.referee_name, r.referee_role, r.note_for_sales) for r in rows] == [
        ("pat@prospect.example", "Pat Prospect", "Head of Finance", note)
    ]
    # Optional: a referral without them is taken as before.
    form |= {"name": "Sam", "email": "sam@other-prospect.example", "company": ""}
    _plain_page(await http.post(url, data=form), 200, "Thank you for the referral")
    sam = await _eventually(lambda: _async(_rows(api, ReferralRow, ReferralRow.referee_email == form["email"])))
    assert (sam[0].referee_role, sam[0].note_for_sales) == (None, None)


def test_share_text_and_hashtag_come_from_the_playbook(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    data["referral_links"].update(share_text="{company} closed our books in 4 days. {hashtag}", hashtag="OrbitalWins")
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(yaml.safe_dump(data))
    deps = SimpleNamespace(playbook=lambda: read_playbook(playbook),
                           settings=SimpleNamespace(public_base_url="https://advocacy.example.com"))  # fmt: skip
    links = _share_links(deps, "Orbital Widgets", "ABCD2345")  # type: ignore[arg-type]
    tweet = parse_qs(urlsplit(links["x"]).query)
    assert tweet["text"] == ["Orbital Widgets closed our books in 4 days. #OrbitalWins"]
    assert tweet["url"][0].startswith("https://advocacy.example.com/r/ABCD2345?") and "utm_content=x" in tweet["url"][0]
    assert "closed%20our%20books" in links["email"]
