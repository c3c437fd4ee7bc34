"""Segment tracking calls (identify, track, batch) as contract events.

`messageId` becomes `event_id`, `userId` becomes `customer_id`, `timestamp`
becomes `occurred_at`. `identify` traits make a `customer_profile`; a `track`
becomes the contract type its event name maps to. The mapping is data
(`DEFAULT_MAPPING`, or a YAML file named by `SEGMENT_MAPPING_PATH`):

    "NPS Survey Submitted":
      type: nps_response
      data: {score: properties.score, comment: properties.comment}

Paths read from the Segment message (`properties.x`, `traits.x`, `context.x`);
a path that is absent is left out. Unmapped names, and page/screen/group/alias
calls, are recorded but change no journey.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from client.ingest import unstorable
from workflows.events import EVENT_TYPES, EventError, iso, parse_timestamp

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

DEFAULT_MAPPING: dict[str, dict[str, Any]] = {
    "NPS Survey Submitted": {"type": "nps_response", "data": {"score": "properties.score", "comment": "properties.comment"}},
    "CSAT Survey Submitted": {"type": "csat_response", "data": {"score": "properties.score"}},
    "Milestone Reached": {"type": "usage_milestone", "data": {"milestone": "properties.milestone", "value": "properties.value"}},
    "Support Ticket Resolved": {"type": "support_resolved", "data": {"ticket_id": "properties.ticket_id", "satisfied": "properties.satisfied"}},
    "Support Ticket Escalated": {"type": "support_escalation", "data": {"ticket_id": "properties.ticket_id", "severity": "properties.severity"}},
    "Subscription Renewed": {"type": "renewal", "data": {"contract_value": "properties.contract_value", "term_months": "properties.term_months"}},
    "Social Mention": {"type": "social_mention", "data": {"url": "properties.url", "sentiment": "properties.sentiment"}},
    "Churn Risk Changed": {"type": "churn_risk", "data": {"level": "properties.level"}},
    "Review Submitted": {"type": "review_submitted", "data": {"site": "properties.site", "url": "properties.url", "rating": "properties.rating"}},
    "Reference Call Completed": {"type": "reference_completed", "data": {"notes": "properties.notes"}},
    "Case Study Published": {"type": "case_study_published", "data": {"notes": "properties.notes"}},
    "Speaking Engagement Completed": {"type": "speaking_completed", "data": {"notes": "properties.notes"}},
    "Referral Submitted": {"type": "referral_submitted", "data": {"referee_email": "properties.referee_email", "referee_name": "properties.referee_name", "referee_company": "properties.referee_company"}},
    "Advisory Board Responded": {"type": "advisory_board_response", "data": {"accepted": "properties.accepted"}},
    "Unsubscribed": {"type": "unsubscribed", "data": {"reason": "properties.reason"}},
}  # fmt: skip

# identify traits -> customer_profile data (first present path wins).
PROFILE_TRAITS: dict[str, tuple[str, ...]] = {
    "email": ("traits.email",),
    "name": ("traits.name", "traits.firstName+traits.lastName", "traits.first_name+traits.last_name"),
    "company": ("traits.company.name", "traits.company"),
    "timezone": ("traits.timezone", "context.timezone"),
    "locale": ("traits.locale", "context.locale"),
    "segment": ("traits.segment",),
    "plan": ("traits.plan",),
}


class SegmentError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass
class Converted:
    """A contract event to apply, or (event is None) a call to record only."""

    event_id: str
    customer_id: str
    type: str
    occurred_at: str
    data: dict[str, Any]
    mapped: bool

    def as_event(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "customer_id": self.customer_id, "type": self.type,
                "occurred_at": self.occurred_at, "data": self.data}  # fmt: skip


def load_mapping(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return DEFAULT_MAPPING
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of event name to {{type, data}}")
    for name, rule in raw.items():
        if not isinstance(rule, dict) or rule.get("type") not in EVENT_TYPES:
            raise ValueError(f"{path}: {name!r}: type must be one of the contract's event types")
        if not isinstance(rule.get("data", {}), dict):
            raise ValueError(f"{path}: {name!r}: data must map fields to paths")
    return {**DEFAULT_MAPPING, **raw}


def _get(message: dict[str, Any], path: str) -> Any:
    if "+" in path:  # first and last name joined
        values = [_get(message, p) for p in path.split("+")]
        return " ".join(str(v) for v in values if v) if all(isinstance(v, str) for v in values) else None
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _timestamp(message: dict[str, Any]) -> str:
    for key in ("timestamp", "originalTimestamp"):
        if isinstance(message.get(key), str) and message[key]:
            try:
                parse_timestamp(message[key], key)
            except EventError as err:
                raise SegmentError(err.field, err.message) from None
            return str(message[key])
    return iso(datetime.now(timezone.utc))


def convert(message: Any, mapping: dict[str, dict[str, Any]]) -> Converted:
    """One Segment call as a contract event; SegmentError names the field at fault."""
    if not isinstance(message, dict):
        raise SegmentError("message", "expected a JSON object")
    unfit = unstorable(message)
    if unfit is not None:
        raise SegmentError(*unfit)
    if len(json.dumps(message, separators=(",", ":")).encode()) > MAX_EVENT_BYTES:
        raise SegmentError("message", f"larger than Segment's {MAX_EVENT_BYTES // 1024} KB per event")
    kind = message.get("type")
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise SegmentError("messageId", "required (it is the event's idempotency key)")
    user_id = message.get("userId")
    if isinstance(user_id, int | float) and not isinstance(user_id, bool):
        user_id = str(user_id)
    occurred_at = _timestamp(message)
    if not isinstance(user_id, str) or not user_id:
        if not message.get("anonymousId"):
            raise SegmentError("userId", "required (or anonymousId)")
        # Anonymous activity has no journey yet: recorded only.
        return Converted(
            message_id, f"anonymous:{message['anonymousId']}"[:128], f"segment.{kind}", occurred_at, message, False
        )
    if kind == "identify":
        data = {}
        for trait, paths in PROFILE_TRAITS.items():
            value = next((v for v in (_get(message, p) for p in paths) if v not in (None, "")), None)
            if value is not None:
                data[trait] = value
        return Converted(message_id, user_id, "customer_profile", occurred_at, data, True)
    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name:
            raise SegmentError("event", "required for track")
        rule = mapping.get(name)
        if rule is None:
            return Converted(message_id, user_id, "segment.track", occurred_at, message, False)
        data = {}
        for key, path in (rule.get("data") or {}).items():
            value = _get(message, str(path))
            if value is not None:
                data[key] = value
        if rule["type"] == "usage_milestone" and "milestone" not in data:
            data["milestone"] = name
        return Converted(message_id, user_id, str(rule["type"]), occurred_at, data, True)
    if kind in ("page", "screen", "group", "alias"):
        return Converted(message_id, user_id, f"segment.{kind}", occurred_at, message, False)
    raise SegmentError("type", f"unknown Segment call {kind!r}")
