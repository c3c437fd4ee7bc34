"""The events table: every accepted event, kept once (unique on event_id)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Event
from workflows.events import parse_timestamp
from workflows.model import CustomerEvent


def record_events(session: Session, events: Sequence[CustomerEvent]) -> int:
    """Insert the events not yet stored; returns how many were new. Re-sending is harmless."""
    ids = {e.event_id for e in events}
    known = set(session.scalars(select(Event.event_id).where(Event.event_id.in_(ids)))) if ids else set()
    now = datetime.now(timezone.utc)
    new = 0
    for event in events:
        if event.event_id in known:
            continue
        known.add(event.event_id)
        session.add(
            Event(
                event_id=event.event_id,
                customer_id=event.customer_id,
                type=event.type,
                occurred_at=parse_timestamp(event.occurred_at),
                received_at=now,
                data=event.data,
            )
        )
        new += 1
    return new
