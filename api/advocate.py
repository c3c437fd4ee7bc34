"""The advocate's own pages, reached from every ask email through a signed, expiring link (`/a/{token}`):
their referral link with share buttons, their referrals, rewards and open asks, a referral form,
accept/decline answers to asks, and their preferences (how often, which programs, a pause, unsubscribe). Plain server-rendered HTML that works without JavaScript.

Every change is a POST carrying a CSRF token, so a mail scanner that follows each GET changes nothing;
forms are rate limited per customer; a bad, expired or borrowed link gets a plain page, never a trace.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import referrals
from api.deps import Deps, deps
from api.schemas import ReferralResult
from client.journeys import get_state, handle
from mail.links import TokenError, csrf_token, unsubscribe_token, verify_csrf_token, verify_page_token, with_utm
from storage.models import REFERRAL_NOTE_LIMITS, STORY_LIMITS, Customer
from storage.referral_notes import save_referral_notes
from storage.stories import save_story
from workflows.addresses import normalise
from workflows.events import TEXT_LIMITS
from workflows.journey import AdvocacyJourney
from workflows.model import (
    ASK_FREQUENCIES,
    AnswerAskInput,
    AnswerAskResult,
    Ask,
    JourneyState,
    SetPreferencesInput,
    SetPreferencesResult,
    SubmitStoryInput,
)
from workflows.policy import ACCEPTABLE
from workflows.policy.ladder import program_or_none
from workflows.policy.preferences import PAUSE_MAX_DAYS

log = logging.getLogger("advocacy.api")
router = APIRouter(tags=["advocate pages"], include_in_schema=False)
PURPOSE = "advocate"
FORM_POSTS_PER_MINUTE = 10
_POST_RATE = parse(f"{FORM_POSTS_PER_MINUTE}/minute")
_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "page_templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
OPEN_FOR_ANSWERS = ("sent", "reminded")
PROGRAMS = {
    "review": ("Write a review", "A few honest sentences on a review site help teams like yours find us."),
    "referral": ("Refer a colleague", "Know a team who would get as much out of it as you do?"),
    "reference": ("Take a reference call", "A 20-minute call with a peer who is considering us, scheduled around you."),
    "case_study": ("Tell your story", "A short case study about what changed for your team, written with you."),
    "speaking": ("Speak at an event", "Share your experience on stage or in a webinar with our team."),
    "advisory_board": ("Join our advisory board", "A few sessions a year shaping what we build next."),
}
REFERRAL_STATUSES = {
    "submitted": "submitted: our team will get in touch",
    "review": "being checked by our team",
    "opportunity": "in conversation with our team",
    "won": "became a customer",
    "lost": "did not go ahead",
}


FREQUENCIES = {
    "program": "Whenever you think it fits (at most every few weeks)",
    "monthly": "At most once a month",
    "quarterly": "At most once a quarter",
}
assert set(FREQUENCIES) == set(ASK_FREQUENCIES)
PAUSES = {"1": 1, "3": 3, "6": 6}  # "pause for N months"


# The referral form's fields, bounded like the event fields they become.
FIELD_LIMITS = {"name": TEXT_LIMITS["referee_name"], "email": TEXT_LIMITS["referee_email"],
                "company": TEXT_LIMITS["referee_company"], "role": REFERRAL_NOTE_LIMITS["role"],
                "note": REFERRAL_NOTE_LIMITS["note"]}  # fmt: skip


# The story form, in the order a case study is told: (field, question, hint).
STORY_QUESTIONS = (
    ("challenge", "The challenge", "What was hard before? A sentence or two is plenty."),
    ("change", "What changed", "What did your team start doing differently with us?"),
    ("results", "Results, with numbers", "Hours saved, time to close, revenue, fewer tickets: whatever you measure."),
    ("quote", "A quote we may use", "One or two sentences in your own words (optional)."),
    ("interview_time", "Best time for a 30-minute interview", "Days, hours and time zone (optional)."),
)
_REQUIRED_STORY = {"challenge": "Please tell us what was hard before.",
                   "change": "Please tell us what changed.",
                   "results": "Please tell us what came of it."}  # fmt: skip


@dataclass
class Form:
    """What the advocate typed, and a plain sentence next to each field that needs another look."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _PAGES.get_template(name).render(**context)
    # No caching and no referrer: the page's address is a key to it.
    return HTMLResponse(body, status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                               "X-Frame-Options": "DENY"})  # fmt: skip


def _message(d: Deps, title: str, text: str, status: int, back: str | None = None) -> HTMLResponse:
    return _render("message.html.j2", status, company=d.settings.company_name, title=title, text=text, back=back)


def _invalid(d: Deps, err: TokenError) -> HTMLResponse:
    return _message(d, "This link does not work",
                    f"{err}. Open the link in the most recent email we sent you, or reply to it and we will help.",
                    400)  # fmt: skip


def _customer(d: Deps, token: str) -> str | TokenError:
    try:
        return verify_page_token(token, PURPOSE, d.settings.unsubscribe_secret or None)
    except TokenError as err:
        return err


async def _state(d: Deps, customer_id: str) -> JourneyState | HTMLResponse:
    try:
        return await get_state(d.client, customer_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return _message(d, "Nothing here yet", "We have nothing to show you here yet.", 404)
        log.warning("advocate page: journey of %s unavailable: %s", customer_id, err.message)
    except WorkflowQueryFailedError as err:
        log.warning("advocate page: state of %s unreadable: %s", customer_id, err)
    return _message(d, "Please try again in a minute", "Your page is unavailable right now.", 503)


def _share_links(d: Deps, company: str, code: str) -> dict[str, str]:
    """Share buttons: pre-written text with the company's hashtag, the link tagged per channel."""
    playbook = d.playbook()
    hashtag = playbook.share_hashtag or "#" + re.sub(r"[^0-9A-Za-z]", "", company)

    def link(channel: str) -> str:
        return with_utm(f"{d.settings.public_base_url}/r/{code}", "referral", channel, medium="referral")

    text = playbook.share_text.format(company=company, hashtag=hashtag)
    mail = {"subject": f"Have a look at {company}", "body": f"Hi,\n\n{text}\n\n{link('email')}\n"}
    return {
        "email": "mailto:?" + urlencode(mail, quote_via=quote),
        "linkedin": "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": link("linkedin")}),
        "x": "https://x.com/intent/tweet?" + urlencode({"text": text, "url": link("x")}),
    }


def _active_code(d: Deps, customer_id: str, code: str | None) -> str | None:
    """The advocate's code, unless ops revoked it (then the page shows no link that would not attribute)."""
    if not code:
        return None
    with d.sessions() as session:
        revoked = session.scalar(select(Customer.referral_revoked_at).where(Customer.customer_id == customer_id))
    return None if revoked is not None else code


async def _home(
    d: Deps, request: Request, token: str, state: JourneyState, form: Form, status: int = 200, prefs: Form | None = None
) -> Response:
    company = d.settings.company_name
    code = await asyncio.to_thread(_active_code, d, state.customer_id, state.referral_code)
    playbook = d.playbook()
    asks = []
    for ask in reversed(state.asks):
        if ask.status not in OPEN_FOR_ANSWERS:
            continue
        spec = program_or_none(playbook, ask.program)
        title, blurb = PROGRAMS.get(ask.program, (ask.program, ""))
        asks.append({"id": ask.ask_id, "program": ask.program, "title": title, "blurb": blurb,
                     "sent": (ask.sent_at or ask.created_at)[:10], "acceptable": ask.program in ACCEPTABLE,
                     "link": spec.link if spec and spec.link else None})  # fmt: skip
    return _render(
        "home.html.j2",
        status,
        company=company,
        first_name=(state.profile.name or "").split(" ")[0],
        token=token,
        csrf=csrf_token(state.customer_id, d.settings.unsubscribe_secret or None),
        referral_link=with_utm(f"{d.settings.public_base_url}/r/{code}", "referral", "page", medium="referral")
        if code
        else None,
        share=_share_links(d, company, code) if code else None,
        referrals=_referral_rows(state),
        rewards=_reward_rows(state),
        asks=asks,
        opted_out=state.opted_out or state.churned,
        form=form,
        limits=FIELD_LIMITS,
        preferences=_preference_view(d, state, prefs or Form()),
    )


def _preference_view(d: Deps, state: JourneyState, form: Form) -> dict[str, Any]:
    """The preferences section: what the customer chose (or what they just sent, with its errors)."""
    prefs = state.preferences
    paused = (prefs.paused_until or "")[:10]
    programs = []
    for spec in d.playbook().programs:
        # A form sent back with errors keeps what was ticked; otherwise what the journey holds.
        ticked = f"program-{spec.name}" in form.values if form.values else spec.name not in prefs.skip_programs
        programs.append({"name": spec.name, "title": PROGRAMS.get(spec.name, (spec.name,))[0], "checked": ticked})
    return {
        "frequencies": FREQUENCIES,
        "frequency": form.values.get("frequency", prefs.frequency),
        "programs": programs,
        "paused_until": paused,
        "pause": form.values.get("pause", "keep" if paused else "none"),
        "pause_until": form.values.get("pause_until", ""),
        "today": datetime.now(timezone.utc).date().isoformat(),
        "errors": form.errors,
        "unsubscribe": f"/u/{unsubscribe_token(state.customer_id, d.settings.unsubscribe_secret or None)}",
    }


def _referral_rows(state: JourneyState) -> list[dict[str, str]]:
    return [
        {
            "name": r.referee_name or r.referee_email,
            "company": r.referee_company or "",
            "status": REFERRAL_STATUSES.get(r.status, r.status),
            "date": r.submitted_at[:10],
        }
        for r in reversed(state.referrals)
    ]


def _reward_rows(state: JourneyState) -> list[dict[str, str]]:
    return [
        {
            "what": PROGRAMS.get(r.program, (r.program,))[0],
            "amount": f"{r.amount:,.2f} {r.currency}",
            "status": r.status,
            "hold_until": (r.hold_until or "")[:10] if r.status == "pending" else "",
        }
        for r in reversed(state.rewards)
        if r.beneficiary == "advocate"
    ]


async def _open(d: Deps, token: str) -> tuple[str, JourneyState] | Response:
    """The customer a page link names and their journey's state, or the plain page saying why not."""
    customer_id = _customer(d, token)
    if isinstance(customer_id, TokenError):
        return _invalid(d, customer_id)
    state = await _state(d, customer_id)
    return state if isinstance(state, HTMLResponse) else (customer_id, state)


@router.get("/a/{token}", response_class=HTMLResponse)
async def advocate_home(token: str, request: Request) -> Response:
    """The advocate's home (contract path)."""
    d = deps(request)
    opened = await _open(d, token)
    if isinstance(opened, Response):
        return opened
    _, state = opened
    return await _home(d, request, token, state, Form())


@router.get("/a/{token}/asks/{ask_id}", response_class=HTMLResponse)
async def ask_page(token: str, ask_id: str, request: Request) -> Response:
    """Where an ask email's button leads: the ask with its answers; an ask no longer open shows the home page."""
    d = deps(request)
    opened = await _open(d, token)
    if isinstance(opened, Response):
        return opened
    customer_id, state = opened
    ask = next((a for a in state.asks if a.ask_id == ask_id and a.status in OPEN_FOR_ANSWERS), None)
    if ask is None or ask.program == "referral":
        return RedirectResponse(f"/a/{token}#{'refer' if ask is not None else 'asks'}", status_code=303)
    return _ask_page(d, token, customer_id, ask, Form())


def _ask_page(d: Deps, token: str, customer_id: str, ask: Ask, story: Form, status: int = 200) -> HTMLResponse:
    title, blurb = PROGRAMS.get(ask.program, (ask.program, ""))
    spec = program_or_none(d.playbook(), ask.program)
    return _render("ask.html.j2", status, company=d.settings.company_name, token=token, title=title, blurb=blurb,
                   ask={"id": ask.ask_id, "acceptable": ask.program in ACCEPTABLE,
                        "link": spec.link if spec and spec.link else None},
                   story={"fields": STORY_QUESTIONS, "limits": STORY_LIMITS, "form": story}
                   if ask.program == "case_study" else None,
                   csrf=csrf_token(customer_id, d.settings.unsubscribe_secret or None))  # fmt: skip


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the API's transport guard bounds the body); the first value of each field."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def _limited(request: Request, customer_id: str) -> bool:
    """Per API process: at most FORM_POSTS_PER_MINUTE form posts a minute per advocate."""
    limiter = getattr(request.app.state, "page_post_limiter", None)
    if limiter is None:
        limiter = request.app.state.page_post_limiter = MovingWindowRateLimiter(MemoryStorage())
    return not limiter.hit(_POST_RATE, customer_id)


async def _admit_post(d: Deps, request: Request, token: str) -> tuple[str, dict[str, str]] | Response:
    customer_id = _customer(d, token)
    if isinstance(customer_id, TokenError):
        return _invalid(d, customer_id)
    form = await _form(request)
    if not verify_csrf_token(form.get("csrf", ""), customer_id, d.settings.unsubscribe_secret or None):
        return _message(d, "This form has expired", "Nothing was changed. Go back to your page, reload it and "
                        "send the form again.", 400, back=f"/a/{token}")  # fmt: skip
    if _limited(request, customer_id):
        return _message(d, "One moment, please", "That was a lot of forms in a minute: nothing was changed. "
                        "Try again in a minute.", 429, back=f"/a/{token}")  # fmt: skip
    return customer_id, form


async def _admit_post_for_state(
    d: Deps, request: Request, token: str
) -> tuple[str, dict[str, str], JourneyState] | Response:
    """An admitted form post and the journey state it changes (or the page saying why not)."""
    admitted = await _admit_post(d, request, token)
    if isinstance(admitted, Response):
        return admitted
    customer_id, values = admitted
    state = await _state(d, customer_id)
    return state if isinstance(state, HTMLResponse) else (customer_id, values, state)


def _referral_form(values: dict[str, str]) -> Form:
    form = Form(values={k: values.get(k, "").strip() for k in FIELD_LIMITS})
    for key, limit in FIELD_LIMITS.items():
        if len(form.values[key]) > limit:
            form.errors[key] = f"Please keep this to {limit} characters."
    if not form.values["email"]:
        form.errors["email"] = "Please enter your colleague's email address."
    return form


def _advocate(d: Deps, customer_id: str) -> Customer | None:
    with d.sessions() as session:
        return session.get(Customer, customer_id)


@router.post("/a/{token}/referrals", response_class=HTMLResponse)
async def refer(token: str, request: Request) -> Response:
    """The referral form: the same rules as POST /v1/referrals; the advocate's own click counts nothing."""
    d = deps(request)
    admitted = await _admit_post(d, request, token)
    if isinstance(admitted, Response):
        return admitted
    customer_id, values = admitted
    form = _referral_form(values)
    advocate = await asyncio.to_thread(_advocate, d, customer_id)
    if advocate is None:
        form.errors["email"] = "We cannot take referrals from this page yet. Please try again tomorrow."
    if not form.errors:
        assert advocate is not None
        try:
            result = await referrals.submit(
                d, advocate, form.values["email"], form.values["name"] or None, form.values["company"] or None
            )
        except referrals.ReferralRefused as err:
            field = {"referee_email": "email", "referee_name": "name", "referee_company": "company"}
            form.errors[field.get(err.field, "email")] = _sentence(err.message)
        except RPCError as err:  # the claim was released: the same form sent again later is taken
            log.warning("advocate page: referral by %s not delivered: %s", customer_id, err.message)
            return _message(d, "Please try again in a minute", "Your referral was not sent: nothing was changed.",
                            503, back=f"/a/{token}")  # fmt: skip
        else:
            log.info("advocate page: %s referred %s", customer_id, result.referral_id)
            who = form.values["name"] or "your colleague"
            text = f"We will get in touch with {who} and keep you posted on this page."
            if (form.values["role"] or form.values["note"]) and not await _keep_notes(d, customer_id, result, form):
                text += " Your note for our team did not reach it: please reply to our email with it."
            return _message(d, "Thank you for the referral", text, 200, back=f"/a/{token}")
    state = await _state(d, customer_id)
    if isinstance(state, HTMLResponse):
        return state
    return await _home(d, request, token, state, form, 422)


async def _keep_notes(d: Deps, customer_id: str, result: ReferralResult, form: Form) -> bool:
    """The role and the note for sales, on the referral's row (the journey took the referral already)."""
    try:
        await asyncio.to_thread(save_referral_notes, d.sessions, customer_id, result.referral_id,
                                normalise(form.values["email"]), form.values["role"] or None, form.values["note"] or None,
                                datetime.now(timezone.utc))  # fmt: skip
    except SQLAlchemyError as err:
        log.warning("advocate page: note on referral %s not kept: %s", result.referral_id, type(err).__name__)
        return False
    return True


def _sentence(reason: str) -> str:
    """A refusal as a sentence next to the field: 'the referee is already a customer' -> 'This person is ...'."""
    text = reason.strip().rstrip(".")
    text = re.sub(r"^the referee\b", "This person", text)
    return text[:1].upper() + text[1:] + "."


@router.post("/a/{token}/asks/{ask_id}", response_class=HTMLResponse)
async def answer(token: str, ask_id: str, request: Request) -> Response:
    """Accept or decline an ask; reaches the journey by Update, and a second answer changes nothing."""
    d = deps(request)
    admitted = await _admit_post(d, request, token)
    if isinstance(admitted, Response):
        return admitted
    customer_id, form = admitted
    choice = form.get("answer", "")
    if choice not in ("accept", "decline"):
        return _message(d, "Please choose an answer", "Nothing was changed.", 422, back=f"/a/{token}")
    try:
        result: AnswerAskResult = await handle(d.client, customer_id).execute_update(
            AdvocacyJourney.answer_ask, AnswerAskInput(ask_id=ask_id, accepted=choice == "accept")
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else "the answer was not taken"
        return _message(d, "We could not take this answer", _sentence(message.partition(": ")[2] or message),
                        422, back=f"/a/{token}")  # fmt: skip
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return _message(d, "Nothing here yet", "We have nothing to show you here yet.", 404)
        log.warning("advocate page: answer for %s not delivered: %s", customer_id, err.message)
        return _message(d, "Please try again in a minute", "Nothing was changed.", 503, back=f"/a/{token}")
    title = PROGRAMS.get(result.program, (result.program,))[0].lower()
    if result.changed and result.status == "completed":
        text = f"You said yes to: {title}. Our team will be in touch to arrange it."
        return _message(d, "Thank you!", text, 200, back=f"/a/{token}")
    if result.changed and result.status == "declined":
        text = f"No problem: we will not ask you to {title} for now."
        return _message(d, "Thanks for letting us know", text, 200, back=f"/a/{token}")
    text = f"This request ({title}) is already closed: {result.status}. Nothing was changed."
    return _message(d, "Already answered", text, 200, back=f"/a/{token}")


def _story_form(values: dict[str, str]) -> Form:
    form = Form(values={name: values.get(name, "").strip() for name, _, _ in STORY_QUESTIONS})
    form.values["may_name"] = "yes" if values.get("may_name") == "yes" else ""
    for name, limit in STORY_LIMITS.items():
        if len(form.values[name]) > limit:
            form.errors[name] = f"Please keep this to {limit} characters."
        elif not form.values[name] and name in _REQUIRED_STORY:
            form.errors[name] = _REQUIRED_STORY[name]
    if "results" not in form.errors and not re.search(r"[0-9]", form.values["results"]):
        form.errors["results"] = "Please include at least one number (hours saved, a percentage, a time)."
    return form


@router.post("/a/{token}/asks/{ask_id}/story", response_class=HTMLResponse)
async def tell_story(token: str, ask_id: str, request: Request) -> Response:
    """The story form of a case-study ask: stored with the ask (sent again, it updates the same row); the first
    story completes the ask and reaches the team, later ones change the story only."""
    d = deps(request)
    admitted = await _admit_post_for_state(d, request, token)
    if isinstance(admitted, Response):
        return admitted
    customer_id, values, state = admitted
    ask = next((a for a in state.asks if a.ask_id == ask_id and a.program == "case_study"), None)
    if ask is None:
        return _message(d, "We could not take this story", "This page asks for no story.", 404, back=f"/a/{token}")
    if ask.status not in (*OPEN_FOR_ANSWERS, "completed"):
        return _message(d, "This request is closed", f"It was {ask.status}: nothing was changed.", 409,
                        back=f"/a/{token}")  # fmt: skip
    form = _story_form(values)
    if form.errors:
        return _ask_page(d, token, customer_id, ask, form, 422)
    fields = {name: form.values[name] for name, _, _ in STORY_QUESTIONS}
    now = datetime.now(timezone.utc)
    story = await asyncio.to_thread(save_story, d.sessions, customer_id, ask_id, fields, bool(form.values["may_name"]),
                                    now)  # fmt: skip
    try:
        result: AnswerAskResult = await handle(d.client, customer_id).execute_update(
            AdvocacyJourney.submit_story, SubmitStoryInput(ask_id=ask_id)
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else "the story was not taken"
        return _message(d, "We could not take this story", _sentence(message.partition(": ")[2] or message),
                        422, back=f"/a/{token}")  # fmt: skip
    except RPCError as err:  # the story is stored: the same form sent again later completes the ask
        log.warning("advocate page: story for %s not delivered: %s", customer_id, err.message)
        return _message(d, "Please try again in a minute", "Your story is saved, but our team has not been told "
                        "yet. Please send the form again in a minute.", 503, back=f"/a/{token}")  # fmt: skip
    log.info("advocate page: %s told the story of %s (submission %d)", customer_id, ask_id, story.submissions)
    if result.changed:
        return _message(d, "Thank you for your story", "Our team has it and will be in touch to write it with you.",
                        200, back=f"/a/{token}")  # fmt: skip
    return _message(d, "Your story is updated", "We keep the latest version you sent; nothing else changed.", 200,
                    back=f"/a/{token}")  # fmt: skip


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _preferences_form(values: dict[str, str], state: JourneyState) -> tuple[Form, str | None]:
    """What the preferences form asks the journey for (the pause as an ISO moment), or errors by field."""
    form = Form(values=dict(values))
    if values.get("frequency") not in FREQUENCIES:
        form.errors["frequency"] = "Please choose how often we may ask."
    today = datetime.now(timezone.utc).date()
    pause = values.get("pause", "none")
    until: date | None = None
    if pause == "keep":
        return form, state.preferences.paused_until
    if pause in PAUSES:
        until = _add_months(today, PAUSES[pause])
    elif pause == "until":
        try:
            until = date.fromisoformat(values.get("pause_until", "").strip())
        except ValueError:
            form.errors["pause_until"] = "Please enter a date, like 2027-03-31."
        else:
            if until <= today:
                form.errors["pause_until"] = "Please choose a date after today."
            elif until > today + timedelta(days=PAUSE_MAX_DAYS - 1):
                form.errors["pause_until"] = "Please choose a date within a year (or unsubscribe below)."
    elif pause != "none":
        form.errors["pause"] = "Please choose whether to pause."
    moment = datetime.combine(until, time(), timezone.utc) if until is not None else None
    return form, moment.isoformat().replace("+00:00", "Z") if moment else None


@router.post("/a/{token}/preferences", response_class=HTMLResponse)
async def preferences(token: str, request: Request) -> Response:
    """How often, which programs, a pause: reaches the journey by Update; the same preferences twice change nothing."""
    d = deps(request)
    admitted = await _admit_post_for_state(d, request, token)
    if isinstance(admitted, Response):
        return admitted
    customer_id, values, state = admitted
    programs = [spec.name for spec in d.playbook().programs]
    form, paused_until = _preferences_form(values, state)
    if form.errors:
        return await _home(d, request, token, state, Form(), 422, prefs=form)
    wanted = SetPreferencesInput(
        frequency=values["frequency"],
        skip_programs=[p for p in programs if f"program-{p}" not in values],
        paused_until=paused_until,
    )
    try:
        result: SetPreferencesResult = await handle(d.client, customer_id).execute_update(
            AdvocacyJourney.set_preferences, wanted
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else "the preferences were not taken"
        return _message(d, "We could not save your preferences", _sentence(message.partition(": ")[2] or message),
                        422, back=f"/a/{token}#preferences")  # fmt: skip
    except RPCError as err:
        log.warning("advocate page: preferences of %s not delivered: %s", customer_id, err.message)
        return _message(d, "Please try again in a minute", "Nothing was changed.", 503, back=f"/a/{token}")
    if not result.changed:
        return _message(d, "Nothing to change", "These already were your preferences.", 200,
                        back=f"/a/{token}#preferences")  # fmt: skip
    chosen = result.preferences
    text = f"We will ask {FREQUENCIES[chosen.frequency][0].lower()}{FREQUENCIES[chosen.frequency][1:]}."
    if chosen.skip_programs:
        text += (
            " We will not ask you to " + ", ".join(PROGRAMS.get(p, (p,))[0].lower() for p in chosen.skip_programs) + "."
        )
    if chosen.paused_until:
        text += f" No requests until {chosen.paused_until[:10]}."
    return _message(d, "Your preferences are saved", text, 200, back=f"/a/{token}#preferences")
