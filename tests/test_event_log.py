"""The events table as the journeys' outbox (SQLite always, PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import starter
from client.ingest import Ingest
from storage.db import alembic_config, database
from storage.event_log import (
    RECORDED,
    conflicts,
    mark_delivery,
    pending_events,
    record_events,
    relay_turn,
    requeue_refused,
)
from storage.models import Customer, Event
from tests.api_stack import free_port
from tests.conftest import PG_URL
from workflows.model import CustomerEvent


def _event(n: int, customer: str = "c1") -> CustomerEvent:
    return CustomerEvent(
        event_id=f"e{n}", customer_id=customer, type="usage_milestone",
        occurred_at=f"2026-11-0{n}T10:00:00Z", data={"milestone": f"m{n}"},
    )  # fmt: skip


def _deliveries(db: sessionmaker[Session]) -> dict[str, str]:
    with db() as session:
        return {event_id: delivery for event_id, delivery in session.execute(select(Event.event_id, Event.delivery))}


def test_rows_are_pending_until_marked_and_marks_only_move_pending_rows(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        assert record_events(session, [_event(1), _event(2), _event(3)]) == 3
        assert record_events(session, [_event(4)], RECORDED) == 1
        assert record_events(session, [_event(1), _event(5)]) == 1  # e1 is kept once
    mark_delivery(db, ["e1"], ["e2"])
    mark_delivery(db, [], ["e1", "e4"])  # a late refusal does not undo a delivery or touch a recorded call
    assert _deliveries(db) == {"e1": "delivered", "e2": "refused", "e3": "pending", "e4": "recorded", "e5": "pending"}
    pending = pending_events(db, timedelta(0), limit=10)
    assert [e.event_id for e in pending] == ["e3", "e5"]
    assert pending[0] == _event(3)  # the same event as sent: timestamp in UTC with Z, data intact
    assert pending_events(db, timedelta(hours=1), limit=10) == []  # too young: its request may be in flight
    assert len(pending_events(db, timedelta(0), limit=1)) == 1


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL unset")
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # a SQLite database has one host: always its turn
async def test_one_relay_at_a_time_across_replicas_on_postgresql(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        record_events(session, [_event(1)])
    with relay_turn(db) as first, relay_turn(db) as second:
        assert first and not second
        # Another replica's relay holds the turn: this one sends nothing (and needs no Temporal).
        assert await Ingest(None, db, "q").redeliver(timedelta(0)) == (0, 0)  # type: ignore[arg-type]
    with relay_turn(db) as again:
        assert again
    assert _deliveries(db) == {"e1": "pending"}


def test_send_event_without_temporal_keeps_the_events_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command.upgrade(alembic_config(url), "head")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # nothing listens there
    event = {"event_id": "cli-1", "customer_id": "c9", "type": "nps_response", "occurred_at": "2026-11-27T10:00:00Z",
             "data": {"score": 9}}  # fmt: skip
    assert starter.main(["send-event", json.dumps(event)]) == 1
    assert "the 1 events are stored: `starter.py redeliver` sends them later" in capsys.readouterr().err
    with database(url) as sessions:
        assert _deliveries(sessions) == {"cli-1": "pending"}


def test_restoring_a_journey_requeues_only_its_refused_events_oldest_first(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        record_events(session, [_event(1), _event(2), _event(3), _event(4, "c2")])
    mark_delivery(db, delivered=["e1"], refused=["e3", "e2", "e4"])
    events = requeue_refused(db, "c1")
    assert [e.event_id for e in events] == ["e2", "e3"]
    assert events[0].occurred_at == "2026-11-02T10:00:00Z" and events[0].data == {"milestone": "m2"}
    assert _deliveries(db) == {"e1": "delivered", "e2": "pending", "e3": "pending", "e4": "refused"}
    assert requeue_refused(db, "c1") == []


def test_an_event_id_taken_by_different_content_is_a_conflict(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        record_events(session, [_event(1)])
    moved = replace(_event(1), customer_id="c2")
    edited = replace(_event(1), data={"milestone": "other"})
    retimed = replace(_event(1), occurred_at="2026-11-09T10:00:00Z")  # a retry that re-stamped it: the same event
    with db.begin() as session:
        assert conflicts(session, [_event(1), moved, edited, retimed, _event(2), replace(_event(2), type="x")]) == [
            1, 2, 5]  # fmt: skip


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database for `starter.py send-event`, and a Temporal address never reached (refusals come first)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command.upgrade(alembic_config(url), "head")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    return url


def test_send_event_refuses_an_event_id_taken_by_a_different_event(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_db
    with database(url) as sessions, sessions.begin() as session:
        record_events(session, [_event(1)])
    taken = {**asdict(_event(1)), "customer_id": "c2"}
    assert starter.main(["send-event", json.dumps([asdict(_event(2)), taken])]) == 2
    assert "event_id 'e1': already used by a different event" in capsys.readouterr().err
    with database(url) as sessions:
        assert _deliveries(sessions) == {"e1": "pending"}  # nothing of the refused send was stored


def test_send_event_refuses_a_referral_of_an_existing_customer(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = cli_db
    with database(url) as sessions, sessions.begin() as session:
        session.add(Customer(customer_id="c9", email="Kim.Lee@gmail.com", created_at=datetime.now(timezone.utc),
                             updated_at=datetime.now(timezone.utc)))  # fmt: skip
    referral = {"event_id": "r1", "customer_id": "c1", "type": "referral_submitted",
                "occurred_at": "2026-11-01T10:00:00Z", "data": {"referee_email": "kimlee+promo@googlemail.com"}}  # fmt: skip
    assert starter.main(["send-event", json.dumps(referral)]) == 2
    assert "'r1': the referee is already a customer" in capsys.readouterr().err
    with database(url) as sessions:
        assert _deliveries(sessions) == {}
