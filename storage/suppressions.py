"""The suppression list: who no email may reach, checked by every send whatever the journey thinks.

A journey's state can be lost (a run the server terminated) or stale; an unsubscribe, an opt-out, a
bounce or a spam report must still hold. Each is recorded here in the same transaction that accepts
it, before any journey hears of it:

- scope `customer`: the customer said stop (unsubscribe link, `unsubscribed` event, opt-out).
  Every message about them stops, except the `team_*` notifications that go to your own team.
- scope `address`: the address itself must not be mailed (bounce, dropped, spam report, the
  provider's unsubscribe), whichever customer it belongs to.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Suppression

CUSTOMER, ADDRESS = "customer", "address"
TEAM_TEMPLATE_PREFIX = "team_"


def address_key(email: str) -> str:
    """Addresses compare case-insensitively and without surrounding space (how providers list them)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def suppress(
    session: Session,
    *,
    reason: str,
    source: str,
    customer_id: str | None = None,
    email: str | None = None,
) -> None:
    """Record a suppression once per (scope, key, reason); repeating it changes nothing.

    With `customer_id`, the customer is suppressed; with `email` and no customer, the address. A provider's
    address-level report (`email` and `customer_id` both given, scope address) keeps the customer for ops.
    """
    scope, key = (ADDRESS, address_key(email)) if email else (CUSTOMER, customer_id)
    if key is None:
        raise ValueError("suppress: a customer_id or an email is required")
    exists = select(Suppression.id).where(
        Suppression.scope == scope, Suppression.key == key, Suppression.reason == reason
    )
    if session.scalar(exists) is not None:
        return
    row = Suppression(scope=scope, key=key, reason=reason[:32], source=source[:64], email=email,
                      customer_id=customer_id, created_at=datetime.now(timezone.utc))  # fmt: skip
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        pass  # a concurrent request recorded the same suppression


def suppression_for(session: Session, *, customer_id: str, to_email: str, template: str) -> Suppression | None:
    """The suppression that forbids this message, or None."""
    conditions = [(Suppression.scope == ADDRESS) & (Suppression.key == address_key(to_email))]
    if not template.startswith(TEAM_TEMPLATE_PREFIX):
        conditions.append((Suppression.scope == CUSTOMER) & (Suppression.key == customer_id))
    return session.scalar(select(Suppression).where(or_(*conditions)).order_by(Suppression.id).limit(1))
