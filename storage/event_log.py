"""The events table: every accepted event, kept once (unique on event_id), and its delivery to the journeys."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Event
from workflows.events import iso, parse_timestamp
from workflows.model import CustomerEvent

PENDING, DELIVERED, REFUSED, RECORDED = "pending", "delivered", "refused", "recorded"
# PostgreSQL advisory lock key of the relay ("advocacy relay" in ASCII, folded into a bigint).
RELAY_LOCK = int.from_bytes(b"advrelay", "big") & 0x7FFF_FFFF_FFFF_FFFF


def record_events(session: Session, events: Sequence[CustomerEvent], delivery: str = PENDING) -> int:
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
                delivery=delivery,
            )
        )
        new += 1
    return new


def conflicts(session: Session, events: Sequence[CustomerEvent]) -> list[int]:
    """Positions of the events whose event_id is taken by a different event, stored or earlier in `events`.

    Different means another customer, type or data; an occurred_at alone does not count (a
    retry may stamp the same event again), so the same event sent twice stays a duplicate.
    """
    ids = {e.event_id for e in events}
    rows = session.execute(
        select(Event.event_id, Event.customer_id, Event.type, Event.data).where(Event.event_id.in_(ids))
    )
    taken: dict[str, tuple[str, str, Any]] = {row.event_id: (row.customer_id, row.type, row.data) for row in rows}
    clashes = []
    for position, event in enumerate(events):
        content = (event.customer_id, event.type, event.data)
        if taken.setdefault(event.event_id, content) != content:
            clashes.append(position)
    return clashes


def mark_delivery(sessions: sessionmaker[Session], delivered: Collection[str], refused: Collection[str] = ()) -> None:
    """After the signals: pending rows become delivered, or refused (the journey had ended)."""
    with sessions.begin() as session:
        for status, ids in ((DELIVERED, delivered), (REFUSED, refused)):
            if ids:
                session.execute(
                    update(Event)
                    .where(Event.event_id.in_(list(ids)), Event.delivery == PENDING)
                    .values(delivery=status)
                )


def pending_events(sessions: sessionmaker[Session], older_than: timedelta, limit: int) -> list[CustomerEvent]:
    """Events stored but not (known to be) signalled, oldest first: what a request left when Temporal failed."""
    cutoff = datetime.now(timezone.utc) - older_than
    with sessions() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.delivery == PENDING, Event.received_at <= cutoff)
            .order_by(Event.received_at, Event.event_id)
            .limit(limit)
        )
        return [_event(r) for r in rows]


def requeue_refused(sessions: sessionmaker[Session], customer_id: str) -> list[CustomerEvent]:
    """A restored journey's refused events, pending again and oldest first, for delivery."""
    with sessions.begin() as session:
        rows = list(
            session.scalars(
                select(Event)
                .where(Event.customer_id == customer_id, Event.delivery == REFUSED)
                .order_by(Event.received_at, Event.event_id)
            )
        )
        for row in rows:
            row.delivery = PENDING
        return [_event(r) for r in rows]


def _event(row: Event) -> CustomerEvent:
    # SQLite hands timestamps back without their offset; all of them are UTC.
    occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=timezone.utc)
    return CustomerEvent(
        event_id=row.event_id, customer_id=row.customer_id, type=row.type, occurred_at=iso(occurred), data=row.data
    )


@contextmanager
def relay_turn(sessions: sessionmaker[Session]) -> Iterator[bool]:
    """Whether this process may relay now: on PostgreSQL one relay at a time across all API replicas
    (a session advisory lock, skipped when taken); SQLite databases live on one host, always yes."""
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "postgresql":
        yield True
        return
    with bind.engine.connect() as connection:
        mine = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_LOCK}))
        try:
            yield mine
        finally:
            if mine:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_LOCK})
            connection.commit()
