"""The database's part of the referral rules, the same on every path a referral arrives by
(`POST /v1/referrals`, contract events, Segment `Referral Submitted`): the journey cannot see other
customers, so these are checked where it can:

- the referee is not already a customer (compared as mailboxes: a +tag or Gmail dots hide no one);
- the referee was not referred before by another advocate (`referral_claims`, unique, so two
  advocates submitting the same person at once cannot both win);
- at most `per_day` referrals per advocate per UTC day.

Self-referral and the journey's own duplicate and cap checks run in the journey as well.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Customer, Event, ReferralClaim
from workflows.addresses import AddressError, address_key, key_domain, normalise
from workflows.model import CustomerEvent
from workflows.policy import every_fix, self_referral

ALREADY_REFERRED = "the referee has already been referred"


def refusal(session: Session, advocate_id: str, advocate_email: str | None, referee: str, per_day: int) -> str | None:
    """Why this referral must be refused, or None."""
    refused = self_referral(advocate_email, referee, every_fix)
    if refused:
        return refused
    key = address_key(referee)
    domains = {key_domain(key), *(("googlemail.com",) if key_domain(key) == "gmail.com" else ())}
    emails = session.scalars(
        select(Customer.email).where(or_(*(func.lower(Customer.email).like(f"%@{d}") for d in domains)))
    )
    if any(email and address_key(email) == key for email in emails):
        return "the referee is already a customer"
    claimed_by = session.scalar(select(ReferralClaim.customer_id).where(ReferralClaim.referee_key == key))
    if claimed_by is not None and claimed_by != advocate_id:
        return ALREADY_REFERRED
    now = datetime.now(timezone.utc)
    today = datetime.combine(now.date(), datetime.min.time(), tzinfo=timezone.utc)
    submitted = session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.customer_id == advocate_id, Event.type == "referral_submitted", Event.received_at >= today)
    )
    if (submitted or 0) >= per_day:
        return f"more than {per_day} referrals per advocate per day"
    return None


def claim(sessions: sessionmaker[Session], referee: str, advocate_id: str) -> bool:
    """Claim the referee's mailbox for this advocate; False when another advocate holds it."""
    key = address_key(referee)
    try:
        with sessions.begin() as session:
            session.add(ReferralClaim(referee_key=key, customer_id=advocate_id, claimed_at=datetime.now(timezone.utc)))
        return True
    except IntegrityError:
        with sessions() as session:
            return (
                session.scalar(select(ReferralClaim.customer_id).where(ReferralClaim.referee_key == key)) == advocate_id
            )


def release(sessions: sessionmaker[Session], referee: str, advocate_id: str) -> None:
    with sessions.begin() as session:
        session.execute(
            delete(ReferralClaim).where(
                ReferralClaim.referee_key == address_key(referee), ReferralClaim.customer_id == advocate_id
            )
        )


def screen_events(sessions: sessionmaker[Session], events: list[CustomerEvent], per_day: int) -> dict[int, str]:
    """Positions of the `referral_submitted` events to refuse, with the reason; the others' referees are
    claimed for their advocates. An event already stored (a retry) is not screened again."""
    referrals = [(i, e) for i, e in enumerate(events) if e.type == "referral_submitted"]
    if not referrals:
        return {}
    refused: dict[int, str] = {}
    with sessions() as session:
        stored = set(
            session.scalars(select(Event.event_id).where(Event.event_id.in_([e.event_id for _, e in referrals])))
        )
        for position, event in referrals:
            if event.event_id in stored:
                continue
            try:
                referee = normalise(str(event.data["referee_email"]))
            except AddressError as err:
                refused[position] = str(err)
                continue
            advocate = session.get(Customer, event.customer_id)
            email = advocate.email if advocate is not None else None
            earlier = sum(
                1 for p, e in referrals if p < position and p not in refused and e.customer_id == event.customer_id
            )
            reason = refusal(session, event.customer_id, email, referee, per_day - earlier)
            if reason is None and not claim(sessions, referee, event.customer_id):
                reason = ALREADY_REFERRED
            if reason is not None:
                refused[position] = reason
    return refused
