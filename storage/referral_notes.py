"""The referral form's context for sales (the referee's role, a note), kept on the referral's row.

The journey records the referral's row (activities.records.record_referral) and never touches these
columns; the page writes them once the journey took the referral, whichever of the two comes first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import ReferralRow


def save_referral_notes(
    sessions: sessionmaker[Session], customer_id: str, referral_id: str, referee_email: str, role: str | None,
    note: str | None, now: datetime,
) -> None:  # fmt: skip
    for attempt in range(2):
        try:
            with sessions.begin() as session:
                row = session.scalar(
                    select(ReferralRow).where(
                        ReferralRow.customer_id == customer_id, ReferralRow.referral_id == referral_id
                    )
                )
                if row is None:  # the journey's record_referral fills in the rest
                    row = ReferralRow(customer_id=customer_id, referral_id=referral_id, referee_email=referee_email,
                                      status="submitted", created_at=now, updated_at=now)  # fmt: skip
                    session.add(row)
                row.referee_role, row.note_for_sales = role, note
            return
        except IntegrityError:  # record_referral inserted it at the same moment: update that row
            if attempt:
                raise
