"""Ops' control over an advocate's referral code: revoke it (fraud, a leaver's link on a forum) or restore it.

A revoked code still redirects prospects to the landing page, without
attribution, and referrals naming it are refused as unknown; the advocate's
journey, rewards already earned and referrals already made are untouched.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session, sessionmaker

from storage.models import Customer


class ReferralCodeError(LookupError):
    """No customer, or no referral code yet, to revoke or restore."""


def set_code_revoked(sessions: sessionmaker[Session], customer_id: str, revoked: bool) -> tuple[str, bool]:
    """Revoke or restore; returns the code and whether anything changed (doing it twice is harmless)."""
    with sessions.begin() as session:
        customer = session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise ReferralCodeError(f"no customer {customer_id!r} in the database")
        if not customer.referral_code:
            raise ReferralCodeError(f"customer {customer_id!r} has no referral code yet")
        if (customer.referral_revoked_at is not None) == revoked:
            return customer.referral_code, False
        customer.referral_revoked_at = datetime.now(timezone.utc) if revoked else None
        return customer.referral_code, True
