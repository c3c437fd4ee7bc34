"""`python starter.py forget CUSTOMER_ID`: the right to erasure, in the database
(`client.journeys.end_journey` ends the journey and deletes its histories from Temporal).

In the database: deletes the customer and their events, anonymises what must
stay for accounting and reporting (ledger amounts, asks, messages, referrals,
clicks, deals) under a stable anonymous id, blanks the outbox's content and
removes the customer's .eml files and delivery-log lines. Safe to run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import (
    AskRow,
    CrmDeal,
    Customer,
    Event,
    Message,
    ReferralClick,
    ReferralRow,
    RewardRow,
    Story,
    Suppression,
    WebhookEvent,
)
from storage.suppressions import CUSTOMER, address_key, suppress

ERASED = "[erased]"


def anonymous_id(customer_id: str) -> str:
    """Stable, so a second run finds the same rows and accounting can still group by advocate."""
    return "anon-" + hashlib.sha256(f"advocacy-erasure|{customer_id}".encode()).hexdigest()[:20]


@dataclass
class ErasureReport:
    customer_id: str
    anonymous_id: str
    workflow: str = "not found"
    # Advocates whose journeys referred this customer: `forget` scrubs the address from their state too.
    referred_by: list[str] = field(default_factory=list)
    journeys_scrubbed: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _count(session: Session, statement: Any) -> int:
    """Rows a bulk UPDATE or DELETE touched."""
    return int(getattr(session.execute(statement), "rowcount", 0) or 0)


def placeholder_email(customer_id: str) -> str:
    """What stands in for an erased customer's address where a record of them must stay (a referral)."""
    return f"{anonymous_id(customer_id)}@erased.invalid"


def _emails(session: Session, customer_id: str) -> set[str]:
    customer = session.get(Customer, customer_id)
    sent_to = session.scalars(select(Message.to_email).where(Message.customer_id == customer_id))
    emails = {e.lower() for e in sent_to if e and e != ERASED}
    if customer is not None and customer.email:
        emails.add(customer.email.lower())
    return emails


def emails_of(sessions: sessionmaker[Session], customer_id: str) -> set[str]:
    """The customer's addresses, read before `erase_rows` removes them (to scrub other journeys)."""
    with sessions() as session:
        return _emails(session, customer_id)


def erase_rows(sessions: sessionmaker[Session], customer_id: str, outbox_dir: Path | None) -> ErasureReport:
    anon = anonymous_id(customer_id)
    report = ErasureReport(customer_id, anon)
    with sessions.begin() as session:
        emails = _emails(session, customer_id)
        keys = list(session.scalars(select(Message.idempotency_key).where(Message.customer_id == customer_id)))
        rows = report.rows
        rows["customers"] = _count(session, delete(Customer).where(Customer.customer_id == customer_id))
        rows["events"] = _count(session, delete(Event).where(Event.customer_id == customer_id))
        rows["stories"] = _count(session, delete(Story).where(Story.customer_id == customer_id))
        rows["asks"] = _count(session, update(AskRow).where(AskRow.customer_id == customer_id).values(customer_id=anon))
        rows["messages"] = _count(session, update(Message)
            .where(Message.customer_id == customer_id)
            .values(customer_id=anon, idempotency_key=func.replace(Message.idempotency_key, customer_id, anon),
                    to_email=ERASED, subject=ERASED, html=ERASED, text=ERASED, error=None)
        )  # fmt: skip
        # The ledger keeps its amounts, under the anonymous id.
        rows["rewards"] = _count(
            session, update(RewardRow).where(RewardRow.customer_id == customer_id).values(customer_id=anon)
        )
        rows["referrals_made"] = _count(
            session,
            update(ReferralRow)
            .where(ReferralRow.customer_id == customer_id)
            .values(customer_id=anon, referral_code=None),
        )
        placeholder = placeholder_email(customer_id)
        if emails:
            # Advocates who referred this customer hold their address too: in their events and journeys.
            report.referred_by = sorted(
                set(session.scalars(
                    select(ReferralRow.customer_id).where(func.lower(ReferralRow.referee_email).in_(emails))
                )) - {customer_id}
            )  # fmt: skip
            rows["referral_events"] = _scrub_referral_events(session, report.referred_by, emails, placeholder)
            rows["suppressions"] = _keep_suppressed_by_address(session, customer_id, anon, emails)
            rows["referrals_received"] = _count(
                session,
                update(ReferralRow)
                .where(func.lower(ReferralRow.referee_email).in_(emails))
                .values(
                    referee_email=placeholder,
                    referee_name=None,
                    referee_company=None,
                    referee_role=None,
                    note_for_sales=None,
                ),
            )
        rows["referral_clicks"] = _count(
            session,
            update(ReferralClick).where(ReferralClick.customer_id == customer_id).values(customer_id=anon, code=ERASED),
        )
        rows["crm_deals"] = _count(
            session, update(CrmDeal).where(CrmDeal.customer_id == customer_id).values(customer_id=anon)
        )
        hooks = session.scalars(
            select(WebhookEvent).where(
                or_(WebhookEvent.customer_id == customer_id, WebhookEvent.idempotency_key.in_(keys))
            )
        ).all()
        for hook in hooks:
            hook.customer_id, hook.idempotency_key, hook.payload = anon, None, {"event": hook.event}
        rows["webhook_events"] = len(hooks)
    if outbox_dir is not None:
        report.files_removed = _clean_outbox(outbox_dir, keys, emails)
    report.rows = {k: v for k, v in report.rows.items() if v}
    return report


def _scrub_referral_events(session: Session, advocates: list[str], emails: set[str], placeholder: str) -> int:
    """Other advocates' referral events that name this customer: the address replaced, name and company gone."""
    scrubbed = 0
    if not advocates:
        return 0
    events = session.scalars(
        select(Event).where(
            Event.customer_id.in_(advocates), Event.type.in_(("referral_submitted", "referral_converted"))
        )
    )
    for event in events:
        data = dict(event.data or {})
        if str(data.get("referee_email", "")).strip().lower() in emails:
            data.pop("referee_name", None)
            data.pop("referee_company", None)
            event.data = {**data, "referee_email": placeholder}
            scrubbed += 1
    return scrubbed


def _keep_suppressed_by_address(session: Session, customer_id: str, anon: str, emails: set[str]) -> int:
    """An erased customer who said stop stays unmailable: their opt-out moves to their addresses' hashes,
    the only trace kept (no address, no customer id)."""
    changed = 0
    for row in session.scalars(select(Suppression).where(Suppression.customer_id == customer_id)).all():
        if row.scope == CUSTOMER:
            for email in emails:
                suppress(session, reason=row.reason, source="kept after erasure", email=email)
            session.delete(row)
        changed += 1
    session.flush()
    for row in session.scalars(select(Suppression).where(Suppression.key.in_([address_key(e) for e in emails]))).all():
        row.email, row.customer_id = None, anon
    return changed


def _clean_outbox(directory: Path, keys: list[str], emails: set[str]) -> int:
    from activities.email import outbox_file_name

    removed = 0
    for key in keys:
        path = directory / outbox_file_name(key)
        if path.exists():
            path.unlink()
            removed += 1
    log = directory / "deliveries.jsonl"
    if log.exists():
        kept = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("key") in keys or str(entry.get("to", "")).lower() in emails:
                continue
            kept.append(line)
        log.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return removed
