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
    WebhookEvent,
)

ERASED = "[erased]"


def anonymous_id(customer_id: str) -> str:
    """Stable, so a second run finds the same rows and accounting can still group by advocate."""
    return "anon-" + hashlib.sha256(f"advocacy-erasure|{customer_id}".encode()).hexdigest()[:20]


@dataclass
class ErasureReport:
    customer_id: str
    anonymous_id: str
    workflow: str = "not found"
    rows: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _count(session: Session, statement: Any) -> int:
    """Rows a bulk UPDATE or DELETE touched."""
    return int(getattr(session.execute(statement), "rowcount", 0) or 0)


def erase_rows(sessions: sessionmaker[Session], customer_id: str, outbox_dir: Path | None) -> ErasureReport:
    anon = anonymous_id(customer_id)
    report = ErasureReport(customer_id, anon)
    with sessions.begin() as session:
        customer = session.get(Customer, customer_id)
        emails = {
            e.lower() for e in session.scalars(select(Message.to_email).where(Message.customer_id == customer_id)) if e
        }
        if customer is not None and customer.email:
            emails.add(customer.email.lower())
        keys = list(session.scalars(select(Message.idempotency_key).where(Message.customer_id == customer_id)))
        rows = report.rows
        rows["customers"] = _count(session, delete(Customer).where(Customer.customer_id == customer_id))
        rows["events"] = _count(session, delete(Event).where(Event.customer_id == customer_id))
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
        if emails:
            rows["referrals_received"] = _count(
                session,
                update(ReferralRow)
                .where(func.lower(ReferralRow.referee_email).in_(emails))
                .values(referee_email=f"{anon}@erased.invalid", referee_name=None, referee_company=None),
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
