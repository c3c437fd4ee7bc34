"""Accepting events: validate each, write it once (unique on event_id), deliver it by signal-with-start.

The answer comes after both, so a 2xx means the event is stored and in its
journey. A retry of the same request finds the rows and signals again, which
the journey ignores (it de-duplicates by event_id).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import MetricMeter

from journeys import JourneyEndedError, send_event
from storage.event_log import record_events
from workflows.events import EventError, event_to_dict, iso, parse_event, parse_timestamp
from workflows.model import CustomerEvent


@dataclass
class ItemError:
    index: int
    field: str
    message: str


@dataclass
class Outcome:
    accepted: int = 0
    recorded_only: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "success": not self.errors,
            "accepted": self.accepted,
            "recorded_only": self.recorded_only,
            "errors": [e.__dict__ for e in self.errors],
        }


@dataclass
class Item:
    """One event to accept: a contract event to apply, or a call to record only."""

    index: int
    raw: dict[str, Any]
    apply: bool = True


class Ingest:
    def __init__(
        self, client: Client, sessions: sessionmaker[Session], task_queue: str, meter: MetricMeter | None = None
    ) -> None:
        self.client, self.sessions, self.task_queue = client, sessions, task_queue
        self.ingested = (meter or MetricMeter.noop).create_counter(
            "advocacy_events_ingested", "events accepted by the API", "events"
        )

    async def accept(self, items: list[Item], outcome: Outcome | None = None) -> Outcome:
        outcome = outcome or Outcome()
        to_apply: list[tuple[int, CustomerEvent]] = []
        to_record: list[CustomerEvent] = []
        for item in items:
            if not item.apply:
                to_record.append(_record_only(item.raw))
                continue
            try:
                event = parse_event(item.raw)
            except EventError as err:
                outcome.errors.append(ItemError(item.index, err.field, err.message))
                continue
            to_apply.append((item.index, event))
            to_record.append(event)
        if to_record:
            await asyncio.to_thread(self._store, to_record)
            for event in to_record:
                self.ingested.add(1, {"type": event.type})
        outcome.recorded_only += len(to_record) - len(to_apply)
        # Per customer in order (a profile before the events that follow it), customers in parallel.
        by_customer: dict[str, list[tuple[int, CustomerEvent]]] = defaultdict(list)
        for index, event in to_apply:
            by_customer[event.customer_id].append((index, event))
        results = await asyncio.gather(*(self._deliver(events) for events in by_customer.values()))
        for accepted, errors in results:
            outcome.accepted += accepted
            outcome.errors += errors
        outcome.errors.sort(key=lambda e: e.index)
        return outcome

    def _store(self, events: list[CustomerEvent]) -> None:
        for attempt in range(3):
            try:
                with self.sessions.begin() as session:
                    record_events(session, events)
                return
            except IntegrityError:
                # A concurrent request stored some of the same event ids first: the rest are stored next try.
                if attempt == 2:
                    raise

    async def _deliver(self, events: list[tuple[int, CustomerEvent]]) -> tuple[int, list[ItemError]]:
        accepted, errors = 0, []
        for index, event in events:
            try:
                await send_event(self.client, event_to_dict(event), self.task_queue)
                accepted += 1
            except JourneyEndedError as err:
                errors.append(ItemError(index, "customer_id", str(err)))
        return accepted, errors


def _record_only(raw: dict[str, Any]) -> CustomerEvent:
    occurred = raw.get("occurred_at")
    try:
        occurred_at = iso(parse_timestamp(str(occurred)))
    except (EventError, ValueError):
        occurred_at = iso(datetime.now(timezone.utc))
    return CustomerEvent(
        event_id=str(raw["event_id"])[:200],
        customer_id=str(raw["customer_id"])[:128],
        type=str(raw["type"])[:64],
        occurred_at=occurred_at,
        data=raw.get("data") or {},
    )
