"""The one ingest path (API, CLI, relay, demo): validate each event, write it once (unique on
event_id), deliver it by signal-with-start, mark what was delivered.

The answer comes after both, so a 2xx means the event is stored and in its
journey. A retry of the same request finds the rows and signals again, which
the journey ignores (it de-duplicates by event_id). The events table is also
the journeys' outbox: a row stays `pending` until its signal succeeded, and
`redeliver` sends what a Temporal outage left pending (the API runs it in the
background; `starter.py redeliver` runs it once).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import MetricMeter

from activities.playbook import read_playbook
from client.journeys import JourneyEndedError, send_event
from plumbing.config import DEFAULT_PLAYBOOK
from storage.event_log import RECORDED, conflicts, mark_delivery, pending_events, record_events, relay_turn
from storage.referral_screen import screen_events
from storage.suppressions import suppress
from workflows.events import EventError, event_to_dict, iso, parse_event, parse_timestamp
from workflows.model import CustomerEvent
from workflows.playbook import Playbook

log = logging.getLogger("advocacy.api")
# Older than any request still in flight: what is pending after this was left by a failure.
REDELIVER_AFTER = timedelta(seconds=30)


@dataclass
class ItemError:
    index: int
    field: str
    message: str


CONFLICT = "already used by a different event (customer_id, type or data differ): a retry must send the same event"


@dataclass
class Outcome:
    accepted: int = 0
    recorded_only: int = 0
    errors: list[ItemError] = field(default_factory=list)
    conflicts: int = 0  # errors that are an event_id taken by a different event

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
        self,
        client: Client,
        sessions: sessionmaker[Session],
        task_queue: str,
        meter: MetricMeter | None = None,
        playbook: Callable[[], Playbook] | None = None,
    ) -> None:
        self.client, self.sessions, self.task_queue = client, sessions, task_queue
        # The referral rules' daily cap, read per request (an edited playbook applies without a restart).
        self.playbook = playbook or (lambda: read_playbook(DEFAULT_PLAYBOOK))
        self.ingested = (meter or MetricMeter.noop).create_counter(
            "advocacy_events_ingested", "events accepted by the API", "events"
        )

    async def accept(self, items: list[Item], outcome: Outcome | None = None) -> Outcome:
        """Store the valid items, then deliver them; raises RPCError when Temporal failed (the events stay pending)."""
        outcome = outcome or Outcome()
        to_apply: list[tuple[int, CustomerEvent]] = []
        to_record: list[tuple[int, CustomerEvent]] = []
        for item in items:
            # One item the database cannot keep must not fail the others stored with it.
            unfit = unstorable(item.raw)
            if unfit is not None:
                outcome.errors.append(ItemError(item.index, *unfit))
                continue
            if not item.apply:
                to_record.append((item.index, _record_only(item.raw)))
                continue
            try:
                event = parse_event(item.raw)
            except EventError as err:
                outcome.errors.append(ItemError(item.index, err.field, err.message))
                continue
            to_apply.append((item.index, event))
        if to_apply:
            # The referral rules of POST /v1/referrals, on every path a referral arrives by.
            per_day = self.playbook().referral_max_per_day
            refused = await asyncio.to_thread(screen_events, self.sessions, [e for _, e in to_apply], per_day)
            for position, reason in refused.items():
                outcome.errors.append(
                    ItemError(to_apply[position][0], "data.referee_email", f"referral refused: {reason}")
                )
            to_apply = [pair for position, pair in enumerate(to_apply) if position not in refused]
        if to_apply or to_record:
            clashes = set(
                await asyncio.to_thread(
                    store_events, self.sessions, [e for _, e in to_apply], [e for _, e in to_record]
                )
            )
            both, offset = to_apply + to_record, len(to_apply)
            for position in sorted(clashes):
                outcome.errors.append(ItemError(both[position][0], "event_id", CONFLICT))
                outcome.conflicts += 1
            to_apply = [pair for position, pair in enumerate(to_apply) if position not in clashes]
            to_record = [pair for position, pair in enumerate(to_record, offset) if position not in clashes]
            for _, event in to_apply + to_record:
                self.ingested.add(1, {"type": event.type})
        outcome.recorded_only += len(to_record)
        accepted, errors = await self.deliver(to_apply)
        outcome.accepted += accepted
        outcome.errors += errors
        outcome.errors.sort(key=lambda e: e.index)
        return outcome

    async def deliver(
        self, events: Sequence[tuple[int, CustomerEvent]], progress: Callable[[int], object] | None = None
    ) -> tuple[int, list[ItemError]]:
        """Signal-with-start each event and mark its row; per customer in order, customers in parallel.

        What was signalled is marked even when another signal failed; that failure is then raised.
        `progress(1)` is called for each event handled (a progress bar's update).
        """
        by_customer: dict[str, list[tuple[int, CustomerEvent]]] = defaultdict(list)
        for index, event in events:
            by_customer[event.customer_id].append((index, event))
        groups = await asyncio.gather(*(self._deliver(group, progress) for group in by_customer.values()))
        delivered = [event_id for group in groups for event_id in group.delivered]
        refused = [event_id for group in groups for event_id, _ in group.refused]
        if delivered or refused:
            await asyncio.to_thread(mark_delivery, self.sessions, delivered, refused)
        failure = next((group.failure for group in groups if group.failure is not None), None)
        if failure is not None:
            raise failure
        return len(delivered), [error for group in groups for _, error in group.refused]

    async def redeliver(self, older_than: timedelta = REDELIVER_AFTER, limit: int = 500) -> tuple[int, int]:
        """Send the events left pending; returns (delivered, refused). Safe to run anywhere, any number of
        times; with several API replicas on PostgreSQL, one relays per round and the others skip it."""
        with relay_turn(self.sessions) as mine:
            if not mine:
                return 0, 0
            events = await asyncio.to_thread(pending_events, self.sessions, older_than, limit)
            if not events:
                return 0, 0
            delivered, errors = await self.deliver(list(enumerate(events)))
        log.info("redelivered %d pending events (%d refused: journey ended)", delivered, len(errors))
        return delivered, len(errors)

    async def _deliver(
        self, events: list[tuple[int, CustomerEvent]], progress: Callable[[int], object] | None
    ) -> _Delivery:
        done = _Delivery()
        for index, event in events:
            try:
                await send_event(self.client, event_to_dict(event), self.task_queue)
                done.delivered.append(event.event_id)
            except JourneyEndedError as err:
                done.refused.append((event.event_id, ItemError(index, "customer_id", str(err))))
            except Exception as err:  # Temporal failed: the rest of this customer's events wait, in order
                done.failure = err
                break
            if progress is not None:
                progress(1)
        return done


def store_events(
    sessions: sessionmaker[Session], to_apply: list[CustomerEvent], to_record: list[CustomerEvent] | None = None
) -> list[int]:
    """Keep each event once, `pending` until delivered (`to_record`: kept, never delivered).

    Returns the positions in `to_apply + to_record` refused (and not stored): their event_id is
    taken by a different event. They must not be delivered either.
    """
    both = [*to_apply, *(to_record or [])]
    for attempt in range(3):
        try:
            with sessions.begin() as session:
                clashes = set(conflicts(session, both))
                kept = [(i, e) for i, e in enumerate(both) if i not in clashes]
                record_events(session, [e for i, e in kept if i < len(to_apply)])
                record_events(session, [e for i, e in kept if i >= len(to_apply)], RECORDED)
                for index, event in kept:
                    if index < len(to_apply) and event.type == "unsubscribed":
                        # With the event, before any journey hears of it: sends check this, not journey state.
                        why = str(event.data.get("reason") or "unsubscribed event")
                        suppress(session, reason="unsubscribed", source=why, customer_id=event.customer_id)
            return sorted(clashes)
        except IntegrityError:
            # A concurrent request stored some of the same event ids first: the rest are stored next try.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Delivery:
    """One customer's events: signalled, refused (journey ended), and the failure that stopped the rest."""

    delivered: list[str] = field(default_factory=list)
    refused: list[tuple[str, ItemError]] = field(default_factory=list)
    failure: Exception | None = None


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field, reason) of the first value no database column can keep: NaN or Infinity (Python's JSON
    reader takes them, JSON and PostgreSQL do not), or a NUL character (PostgreSQL refuses it in text)."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where or "value", "must be a finite number (not NaN or Infinity)"
        if isinstance(item, str) and "\x00" in item:
            return where or "value", "must not contain the NUL character"
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and "\x00" in key:
                    return where or "value", "keys must not contain the NUL character"
                stack.append((f"{where}.{key}" if where else str(key), child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


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
