"""The journey state's size budget: what grows with time is kept to a bound.

The whole state travels in one Temporal payload (a query's answer, the continue-as-new input), and
Temporal refuses payloads over 2 MB (`blob data size exceeds limit`). Text is bounded where events are
validated (workflows.events.TEXT_LIMITS); here, the lists that would otherwise grow for ever. What is
dropped stays in the database (referrals table, events table); tests/test_state_budget.py fills every
list and field to its bound and checks the encoded state against STATE_BUDGET_BYTES.
"""

from __future__ import annotations

import hashlib

from workflows import patches
from workflows.model import JourneyState
from workflows.policy.context import Policy

STATE_BUDGET_BYTES = 1_000_000  # half of Temporal's 2 MB payload limit: room for what is not counted here
MAX_REFERRALS_KEPT = 200
MAX_COMPLETION_KEYS_KEPT = 500
EVENT_KEY_CHARS = 40  # a UUID fits; longer ids (up to 200 characters) are remembered by a digest


def event_key(event_id: str) -> str:
    """How an applied event's id is remembered for deduplication."""
    if len(event_id) <= EVENT_KEY_CHARS:
        return event_id
    return "#" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def seen(state: JourneyState, event_id: str) -> bool:
    # Journeys from before digests kept long ids whole.
    return event_key(event_id) in state.seen_event_ids or event_id in state.seen_event_ids


def keep_within_budget(state: JourneyState, ctx: Policy) -> None:
    """Drop the oldest referrals (closed ones first) and completion keys beyond their bounds."""
    excess = len(state.referrals) - MAX_REFERRALS_KEPT
    if excess > 0 and ctx.patched(patches.STATE_BUDGET):
        closed = [r.referral_id for r in state.referrals if r.status in ("won", "lost")]
        still_open = [r.referral_id for r in state.referrals if r.status not in ("won", "lost")]
        dropped = set((closed + still_open)[:excess])
        state.referrals = [r for r in state.referrals if r.referral_id not in dropped]
    excess = len(state.completion_keys) - MAX_COMPLETION_KEYS_KEPT
    if excess > 0 and ctx.patched(patches.STATE_BUDGET):
        del state.completion_keys[:excess]
