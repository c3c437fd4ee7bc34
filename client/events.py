"""The one way events are built in code (the API's own events, the demo, benchmarks, tests)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from workflows.events import iso


def new_event(
    customer_id: str,
    type: str,
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A contract event as JSON; `event_id` is the caller's idempotency key (a fresh one if not given)."""
    return {
        "event_id": event_id or f"ev-{uuid.uuid4().hex[:16]}",
        "customer_id": customer_id,
        "type": type,
        "occurred_at": iso(at or datetime.now(timezone.utc)),
        "data": data or {},
    }
