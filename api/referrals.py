"""Referral links (/r/CODE), referrals submitted to the API, and CRM deal updates that convert them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import auth
from api.deps import Deps, deps
from api.schemas import DealRequest, DealResult, Problem, ReferralRequest, ReferralResult
from client.events import new_event
from client.ingest import Item
from client.journeys import handle
from mail.links import sign_value, verify_value, with_utm
from storage import referral_screen
from storage.event_log import DELIVERED, record_events
from storage.models import CrmDeal, Customer, ReferralClick, ReferralRow
from workflows.addresses import AddressError, normalise
from workflows.events import EventError, parse_event
from workflows.journey import AdvocacyJourney
from workflows.model import CustomerEvent, SubmitReferralInput, SubmitReferralResult
from workflows.playbook import Playbook

log = logging.getLogger("advocacy.api")
router = APIRouter(tags=["referrals"])
VISITOR_COOKIE, REFERRAL_COOKIE = "adv_vid", "adv_ref"
LINK_CLICKS_PER_MINUTE = 30
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem},
    404: {"model": Problem, "description": "no such advocate, referral or code"},
    422: {"model": Problem, "description": "refused, with the reason"},
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _active_advocate(request: Request, code: str) -> Customer | None:
    with deps(request).sessions() as session:
        customer = session.scalar(select(Customer).where(Customer.referral_code == code))
        return customer if customer is not None and customer.referral_revoked_at is None else None


@router.get("/r/{code}", response_class=RedirectResponse, status_code=302,
            responses={302: {"description": "to the landing page, with UTM parameters (and the code when valid)"}})  # fmt: skip
async def referral_link(code: str, request: Request) -> RedirectResponse:
    """An advocate's referral link: count the click, remember the referrer, redirect. Never an error page."""
    d = deps(request)
    customer = None
    try:
        customer = await asyncio.to_thread(_active_advocate, request, code)
    except SQLAlchemyError:
        log.exception("referral link lookup failed; redirecting without attribution")
    target = with_utm(d.settings.referral_landing_url, "referral", medium="referral")
    if customer is None:
        return RedirectResponse(target, status_code=302)
    response = RedirectResponse(f"{target}&ref={code}", status_code=302)
    visitor = _visitor(request, d.settings.unsubscribe_secret)
    secure = request.url.scheme == "https"
    response.set_cookie(VISITOR_COOKIE, visitor, max_age=365 * 86400, httponly=True, samesite="lax", secure=secure)
    window = int(d.playbook().referral_attribution_seconds)
    signed = sign_value(code, "referral-cookie", d.settings.unsubscribe_secret)
    response.set_cookie(REFERRAL_COOKIE, signed, max_age=window, httponly=True, samesite="lax", secure=secure)
    if not _click_limiter(request).hit(_CLICK_RATE, request.client.host if request.client else "-", code):
        return response  # a loop from one address: redirected as ever, not counted
    try:
        await asyncio.to_thread(_count_click, request, code, customer.customer_id, visitor)
    except SQLAlchemyError:
        log.exception("could not record a referral click")
    return response


_CLICK_RATE = parse(f"{LINK_CLICKS_PER_MINUTE}/minute")


def _click_limiter(request: Request) -> MovingWindowRateLimiter:
    """Per API process (each replica counts its own): clicks counted per client address and code."""
    limiter = getattr(request.app.state, "click_limiter", None)
    if limiter is None:
        limiter = request.app.state.click_limiter = MovingWindowRateLimiter(MemoryStorage())
    return limiter


def _visitor(request: Request, secret: str) -> str:
    """The visitor cookie's id; without one (a cookie-less browser, a script), one derived from the client's
    address and user agent, so repeated clicks are one visitor rather than a new one each time."""
    kept = request.cookies.get(VISITOR_COOKIE, "")
    if re.fullmatch(r"[0-9a-f]{32}", kept):
        return kept
    client = f"{request.client.host if request.client else '-'}|{request.headers.get('user-agent', '')}"
    return sign_value(client, "visitor", secret).rsplit(".", 1)[1]


def _attributed_code(request: Request) -> str | None:
    """The advocate's code from the attribution cookie, when its signature holds."""
    return verify_value(
        request.cookies.get(REFERRAL_COOKIE, ""), "referral-cookie", deps(request).settings.unsubscribe_secret
    )


def _count_click(request: Request, code: str, customer_id: str, visitor: str) -> None:
    now = _now()
    digest = hashlib.sha256(visitor.encode()).hexdigest()[:32]
    try:
        with deps(request).sessions.begin() as session:
            session.add(ReferralClick(code=code, customer_id=customer_id, visitor=digest, day=now.date().isoformat(),
                                      clicked_at=now))  # fmt: skip
    except IntegrityError:
        pass  # this visitor already clicked this link today


def _advocate(request: Request, body: ReferralRequest) -> Customer | None:
    code = body.code or _attributed_code(request)
    with deps(request).sessions() as session:
        if body.advocate_id:
            return session.get(Customer, body.advocate_id)
        if code:
            customer = session.scalar(select(Customer).where(Customer.referral_code == code))
            return customer if customer is not None and customer.referral_revoked_at is None else None
    return None


@router.post("/v1/referrals", response_model=ReferralResult, status_code=201, responses=REFUSED)
async def submit_referral(body: ReferralRequest, request: Request) -> ReferralResult:
    """A referral from a form or the advocate: checked, then submitted to the advocate's journey."""
    d = deps(request)
    auth.require(request, d.settings.api_write_keys, "write")
    try:
        normalise(body.referee_email)
    except AddressError as err:
        raise HTTPException(422, f"referee_email: {err}") from None
    if not (body.code or body.advocate_id or _attributed_code(request)):
        raise HTTPException(422, "code or advocate_id: one is required")
    advocate = await asyncio.to_thread(_advocate, request, body)
    if advocate is None:
        raise HTTPException(404, "no active advocate with that code or id")
    try:
        return await submit(d, advocate, body.referee_email, body.referee_name, body.referee_company)
    except ReferralRefused as err:
        raise HTTPException(err.status, err.detail) from None


class ReferralRefused(Exception):
    """Why a referral was not taken: the field at fault and a plain sentence (the API answers `detail`)."""

    def __init__(self, status: int, field: str, message: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.field, self.message, self.detail = status, field, message, detail


async def submit(
    d: Deps, advocate: Customer, referee_email: str, referee_name: str | None, referee_company: str | None
) -> ReferralResult:
    """Every referral an advocate submits (the API, the advocate's page): the database's rules, the claim,
    then the journey's own rules by Update. ReferralRefused with the reason; nothing is kept of a refusal."""
    try:
        referee = normalise(referee_email)
    except AddressError as err:
        raise ReferralRefused(422, "referee_email", str(err), f"referee_email: {err}") from None
    refusal = await asyncio.to_thread(_refusal, d, advocate, referee, d.playbook().referral_max_per_day)
    if refusal:
        raise ReferralRefused(422, "referee_email", refusal, f"referral refused: {refusal}")
    # The unique claim decides between advocates submitting the same person at once; the journey decides the rest.
    if not await asyncio.to_thread(referral_screen.claim, d.sessions, referee, advocate.customer_id):
        already = referral_screen.ALREADY_REFERRED
        raise ReferralRefused(422, "referee_email", already, f"referral refused: {already}")
    try:
        result = await _submit(d.client, advocate.customer_id, referee, referee_name, referee_company)
    except BaseException:
        await asyncio.to_thread(referral_screen.release, d.sessions, referee, advocate.customer_id)
        raise
    await asyncio.to_thread(_remember_submission, d, advocate.customer_id, result.referral_id, referee)
    return ReferralResult(referral_id=result.referral_id, status=result.status, advocate_id=advocate.customer_id)


def _refusal(d: Deps, advocate: Customer, referee: str, per_day: int) -> str | None:
    with d.sessions() as session:
        return referral_screen.refusal(session, advocate.customer_id, advocate.email, referee, per_day)


async def _submit(
    client: Client, advocate_id: str, referee: str, name: str | None, company: str | None
) -> SubmitReferralResult:
    try:
        return await handle(client, advocate_id).execute_update(
            AdvocacyJourney.submit_referral,
            SubmitReferralInput(referee_email=referee, referee_name=name, referee_company=company),
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        field, _, reason = message.partition(": ")
        if field != "referee_email" or not reason:
            field, reason = "referee_email", message.removeprefix("referral refused: ")
        raise ReferralRefused(422, field, reason, message) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            detail = f"advocate {advocate_id!r} has no journey"
            raise ReferralRefused(404, "advocate", detail, detail) from None
        raise


def _remember_submission(d: Deps, advocate_id: str, referral_id: str, referee: str) -> None:
    data = {"referee_email": referee, "referral_id": referral_id}
    event = CustomerEvent(
        **new_event(advocate_id, "referral_submitted", data, event_id=f"api-referral-{advocate_id}-{referral_id}")
    )
    try:
        with d.sessions.begin() as session:
            record_events(session, [event], DELIVERED)  # the journey has it: the update above
    except IntegrityError:
        pass


STAGES = {"opportunity": "opportunity", "won": "won", "lost": "lost", "refunded": "lost"}


class DealRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _match_referral(request: Request, body: DealRequest) -> ReferralRow | None:
    """The referral this deal belongs to; DealRefused when only the advocate's code names it and it has several."""
    with deps(request).sessions() as session:
        query = select(ReferralRow).order_by(ReferralRow.created_at.desc(), ReferralRow.id.desc())
        if body.referral_id:
            return session.scalar(query.where(ReferralRow.referral_id == body.referral_id))
        if body.code:
            advocate = session.scalar(select(Customer).where(Customer.referral_code == body.code))
            if advocate is None:
                return None
            query = query.where(ReferralRow.customer_id == advocate.customer_id)
        if body.referee_email:
            query = query.where(func.lower(ReferralRow.referee_email) == body.referee_email.strip().lower())
        elif not body.code:
            return None
        rows = list(session.scalars(query.limit(2)))
        if len(rows) > 1:
            # The advocate's latest referral is a guess: the deal may belong to any of them.
            raise DealRefused(422, "referral_id or referee_email: the code alone is ambiguous, "
                                   f"advocate {rows[0].customer_id!r} has several referrals")  # fmt: skip
        return rows[0] if rows else None


def _currency_refusal(playbook: Playbook, currency: str) -> str | None:
    """Why a deal in `currency` cannot be rewarded, or None: the playbook must say what it is worth."""
    if currency == playbook.referral_reward.currency or currency in playbook.currency_rates:
        return None
    return (
        f"no rate for {currency} into the reward currency {playbook.referral_reward.currency}: "
        "add it to the playbook's currency_rates, or send the deal in a currency it lists"
    )


def _record_deal(request: Request, body: DealRequest, stage: str, referral: ReferralRow, currency: str | None) -> bool:
    """Store the deal update; False when this deal and stage came before. DealRefused when the deal was won,
    then lost or refunded, and is won again under the same id (its journey would drop that win)."""
    try:
        with deps(request).sessions.begin() as session:
            if stage == "won":
                stages = set(session.scalars(select(CrmDeal.stage).where(CrmDeal.deal_id == body.deal_id)))
                if {"won", "lost"} <= stages:
                    raise DealRefused(409, f"stage: deal {body.deal_id!r} was won, then lost or refunded; "
                                           "a new win needs a new deal_id")  # fmt: skip
            session.add(CrmDeal(deal_id=body.deal_id, stage=stage, customer_id=referral.customer_id,
                                referral_id=referral.referral_id,
                                amount=Decimal(str(body.amount)) if body.amount is not None else None,
                                currency=currency, received_at=_now()))  # fmt: skip
        return True
    except IntegrityError:
        return False


def _forget_deal(request: Request, deal_id: str, stage: str) -> None:
    with deps(request).sessions.begin() as session:
        session.execute(delete(CrmDeal).where(CrmDeal.deal_id == deal_id, CrmDeal.stage == stage))


@router.post("/v1/crm/deals", response_model=DealResult, responses=REFUSED, tags=["crm"])
async def crm_deal(body: DealRequest, request: Request) -> JSONResponse:
    """A CRM deal created, won or lost, matched to a referral: it reaches the journey as referral_converted."""
    d = deps(request)
    auth.require(request, d.settings.api_write_keys, "write")
    stage = STAGES.get(body.stage.strip().lower())
    if stage is None:
        raise HTTPException(422, f"stage: one of {', '.join(STAGES)}")
    if body.amount is not None and not (0 <= body.amount < 1e12):
        raise HTTPException(422, "amount: must be zero or more")
    if not (body.referral_id or body.referee_email or body.code):
        raise HTTPException(422, "referral_id, referee_email or code: one is required")
    currency = body.currency.strip().upper() if body.currency else None
    if currency:
        refusal = _currency_refusal(d.playbook(), currency)
        if refusal:
            raise HTTPException(422, f"currency: {refusal}")
    try:
        referral = await asyncio.to_thread(_match_referral, request, body)
    except DealRefused as err:
        raise HTTPException(err.status, err.detail) from None
    if referral is None:
        raise HTTPException(404, "no referral matches this deal")
    event_id = f"deal-{body.deal_id}-{stage}"[:200]
    data: dict[str, Any] = {
        "referral_id": referral.referral_id,
        "referee_email": referral.referee_email,
        "stage": stage,
    }
    if body.amount is not None:
        data["amount"] = body.amount
    if currency:
        data["currency"] = currency
    raw = new_event(referral.customer_id, "referral_converted", data, event_id=event_id, at=_now())
    try:  # checked before anything is stored: a refused deal leaves no row that makes its corrected retry a duplicate
        parse_event(raw)
    except EventError as err:
        raise HTTPException(422, f"{err.field.removeprefix('data.')}: {err.message}") from None
    try:
        fresh = await asyncio.to_thread(_record_deal, request, body, stage, referral, currency)
    except DealRefused as err:
        raise HTTPException(err.status, err.detail) from None
    outcome = await d.ingest.accept([Item(0, raw)])
    if outcome.errors:
        if fresh:
            await asyncio.to_thread(_forget_deal, request, body.deal_id, stage)
        error = outcome.errors[0]
        raise HTTPException(422, f"{error.field}: {error.message}")
    result = DealResult(advocate_id=referral.customer_id, referral_id=referral.referral_id, event_id=event_id,
                        duplicate=not fresh)  # fmt: skip
    return JSONResponse(result.model_dump(), status_code=200)
