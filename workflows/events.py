"""Validation of customer events (contract). Pure: used by the CLI, the workflow and tests.

`parse_event` either returns a normalised `CustomerEvent` or raises `EventError`
naming the field at fault, so nothing is applied from a bad event.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from workflows.model import CustomerEvent
from workflows.schedule import is_known_zone


class EventError(ValueError):
    def __init__(self, field: str, message: str, over_limit: bool = False) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        # A size bound refused it (the journey applied such events before the bounds existed).
        self.over_limit = over_limit


# Patterns are used with fullmatch: `$` alone would let a trailing newline through.
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
CURRENCY_RE = re.compile(r"[A-Z]{3}")

# The longest text each field may hold: no longer than the database column that keeps it
# (storage.models sizes its columns from this table), and short enough that the journey
# state, which quotes some of them, stays within its budget (workflows.budget).
TEXT_LIMITS: dict[str, int] = {
    "email": 320, "name": 200, "company": 200, "timezone": 64, "locale": 16, "segment": 64, "plan": 64,
    "referee_email": 320, "referee_name": 200, "referee_company": 200, "referral_id": 64, "currency": 3,
    "milestone": 200, "value": 200, "site": 64, "url": 2048, "comment": 2000, "notes": 2000, "reason": 500,
    "ticket_id": 128, "severity": 32, "sentiment": 16, "level": 16, "stage": 16,
}  # fmt: skip
MAX_EXTRA_TEXT = 1000  # a string in a field outside the schema
MAX_DATA_BYTES = 16_384  # all of `data`, as compact JSON

# Per type: field -> (python types, required). Extra fields are allowed but typed when known.
_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)

SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "customer_profile": {
        "email": (_STR, True),
        "name": (_STR, True),
        "company": (_STR, True),
        "timezone": (_STR, False),
        "locale": (_STR, False),
        "segment": (_STR, False),
        "plan": (_STR, False),
    },
    "nps_response": {"score": (_INT, True), "comment": (_STR, False)},
    "csat_response": {"score": (_INT, True)},
    "usage_milestone": {"milestone": (_STR, True), "value": (_NUM + _STR, False)},
    "support_resolved": {"ticket_id": (_STR + _INT, True), "satisfied": (_BOOL, False)},
    "support_escalation": {"ticket_id": (_STR + _INT, True), "severity": (_STR + _INT, False)},
    "renewal": {"contract_value": (_NUM, False), "term_months": (_INT, False)},
    "social_mention": {"url": (_STR, True), "sentiment": (_STR, True)},
    "churn_risk": {"level": (_STR, True)},
    "review_submitted": {"site": (_STR, True), "url": (_STR, False), "rating": (_NUM, True)},
    "reference_completed": {"notes": (_STR, False)},
    "case_study_published": {"notes": (_STR, False)},
    "speaking_completed": {"notes": (_STR, False)},
    "referral_submitted": {
        "referee_email": (_STR, True),
        "referee_name": (_STR, False),
        "referee_company": (_STR, False),
    },
    "referral_converted": {
        "referral_id": (_STR, False),
        "referee_email": (_STR, False),
        "stage": (_STR, True),
        "amount": (_NUM, False),
        "currency": (_STR, False),
    },
    "advisory_board_response": {"accepted": (_BOOL, True)},
    "unsubscribed": {"reason": (_STR, False)},
}

EVENT_TYPES = tuple(SCHEMAS)

_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("social_mention", "sentiment"): ("positive", "neutral", "negative"),
    ("churn_risk", "level"): ("low", "medium", "high"),
    ("referral_converted", "stage"): ("opportunity", "won", "lost"),
}

_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("nps_response", "score"): (0, 10),
    ("csat_response", "score"): (1, 5),
    ("review_submitted", "rating"): (0, 5),
    ("referral_converted", "amount"): (0, 1e12),
    ("renewal", "contract_value"): (0, 1e12),
    ("renewal", "term_months"): (0, 1200),
}


def parse_timestamp(value: Any, field: str = "occurred_at") -> datetime:
    if not isinstance(value, str) or not value:
        raise EventError(field, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(field, f"not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00: before year 1 in UTC
        raise EventError(field, f"out of range in UTC: {value!r}") from None


def when(value: str | None) -> datetime | None:
    """A timestamp kept in the journey state (ISO 8601, UTC), or None."""
    return None if value is None else parse_timestamp(value, "timestamp")


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def parse_event(raw: Any, bounded: bool = True) -> CustomerEvent:
    if not isinstance(raw, dict):
        raise EventError("event", "must be a JSON object")
    unknown = set(raw) - {"event_id", "customer_id", "type", "occurred_at", "data"}
    if unknown:
        raise EventError(sorted(unknown)[0], "unknown top-level field")
    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        raise EventError("event_id", "required non-empty string (at most 200 characters)")
    customer_id = raw.get("customer_id")
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        raise EventError(
            "customer_id",
            "required string of letters, digits, '_', '.', ':' or '-' (at most 128)",
        )
    event_type = raw.get("type")
    if event_type not in SCHEMAS:
        raise EventError("type", f"unknown event type {event_type!r}; one of {', '.join(EVENT_TYPES)}")
    occurred = parse_timestamp(raw.get("occurred_at"))
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError("data", "must be a JSON object")
    schema = SCHEMAS[event_type]
    if bounded:
        _check_sizes(data)
    for name, (types, required) in schema.items():
        value = data.get(name)
        if value is None:
            if required:
                raise EventError(f"data.{name}", f"required for {event_type}")
            continue
        # bool is an int in Python; never accept it where a number is meant.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise EventError(f"data.{name}", f"must be a {_type_name(types)}")
        allowed = _ENUMS.get((event_type, name))
        if allowed and value not in allowed:
            raise EventError(f"data.{name}", f"must be one of {', '.join(allowed)}")
        bounds = _RANGES.get((event_type, name))
        if bounds and isinstance(value, (int, float)) and not bounds[0] <= value <= bounds[1]:
            raise EventError(f"data.{name}", f"must be between {bounds[0]:g} and {bounds[1]:g}")
    if event_type == "customer_profile" and not EMAIL_RE.fullmatch(data["email"]):
        raise EventError("data.email", "not an email address")
    tz = data.get("timezone")
    if event_type == "customer_profile" and tz is not None and not is_known_zone(tz):
        raise EventError("data.timezone", f"unknown IANA time zone {tz!r}")
    if event_type == "referral_submitted" and not EMAIL_RE.fullmatch(data["referee_email"]):
        raise EventError("data.referee_email", "not an email address")
    if event_type == "referral_converted":
        if not data.get("referral_id") and not data.get("referee_email"):
            raise EventError("data.referral_id", "referral_id or referee_email is required")
        currency = data.get("currency")
        if currency is not None and not CURRENCY_RE.fullmatch(currency):
            raise EventError("data.currency", "must be a three-letter ISO 4217 code")
    return CustomerEvent(
        event_id=event_id,
        customer_id=customer_id,
        type=event_type,
        occurred_at=iso(occurred),
        data=dict(data),
    )


def _check_sizes(data: dict[str, Any]) -> None:
    """Refuse text over its bound, field by field and in total, before anything else looks at it."""
    for name, value in data.items():
        limit = TEXT_LIMITS.get(name, MAX_EXTRA_TEXT)
        if isinstance(value, str) and len(value) > limit:
            raise EventError(f"data.{name}", f"at most {limit} characters (got {len(value)})", over_limit=True)
    try:
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        raise EventError("data", "must be plain JSON") from None
    if size > MAX_DATA_BYTES:
        raise EventError("data", f"at most {MAX_DATA_BYTES} bytes as JSON (got {size})", over_limit=True)


def event_to_dict(event: CustomerEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "data": event.data,
    }
