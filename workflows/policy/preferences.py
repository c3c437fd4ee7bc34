"""The customer's own preferences, from their page: how often they are willing to be asked, programs they
do not want, and a pause until a date. Each answers only where the customer chose something, and asks
`patched` only then: journeys without preferences (every recorded one) replay as they ran."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows import patches
from workflows.events import iso, parse_timestamp, when
from workflows.model import ASK_FREQUENCIES, JourneyState, Preferences
from workflows.policy.context import Policy

PAUSE_MAX_DAYS = 366  # a pause ends within a year; a customer who wants no asks at all unsubscribes


def paused_until(state: JourneyState, ctx: Policy) -> datetime | None:
    """The end of the customer's pause while it lasts, else None."""
    until = when(state.preferences.paused_until)
    if until is None or until <= ctx.now or not ctx.patched(patches.CUSTOMER_PREFERENCES):
        return None
    return until


def pause_end(state: JourneyState, ctx: Policy) -> datetime | None:
    """When a pause the customer set ends (also once it is due, so the journey acts on it)."""
    until = when(state.preferences.paused_until)
    return until if until is not None and ctx.patched(patches.CUSTOMER_PREFERENCES) else None


def skipped(state: JourneyState, ctx: Policy, program: str) -> bool:
    """The customer said this program does not interest them."""
    return program in state.preferences.skip_programs and ctx.patched(patches.CUSTOMER_PREFERENCES)


def spacing_next(state: JourneyState, ctx: Policy) -> datetime | None:
    """The earliest next ask the customer's chosen frequency allows, when it asks for more room than none."""
    days = ASK_FREQUENCIES.get(state.preferences.frequency, 0)
    if not days or not state.asks or not ctx.patched(patches.CUSTOMER_PREFERENCES):
        return None
    last = max(parse_timestamp(a.created_at) for a in state.asks)
    return last + timedelta(days=days)


def preferences_refusal(frequency: object, skip_programs: object, paused_until: object, now: datetime,
                        programs: tuple[str, ...]) -> str | None:  # fmt: skip
    """Why these preferences cannot be taken, naming the field, or None."""
    if not isinstance(frequency, str) or frequency not in ASK_FREQUENCIES:
        return f"frequency: must be one of {', '.join(ASK_FREQUENCIES)}"
    if not isinstance(skip_programs, list) or not all(isinstance(p, str) for p in skip_programs):
        return "skip_programs: must be a list of program names"
    unknown = sorted(set(skip_programs) - set(programs))
    if unknown:
        return f"skip_programs: no such program: {', '.join(unknown)[:200]}"
    if paused_until is not None:
        if not isinstance(paused_until, str):
            return "paused_until: must be an ISO 8601 timestamp or null"
        try:
            until = when(paused_until)
        except ValueError:
            return "paused_until: not an ISO 8601 timestamp"
        assert until is not None
        if until > now + timedelta(days=PAUSE_MAX_DAYS):
            return f"paused_until: at most {PAUSE_MAX_DAYS} days ahead"
    return None


def normalized(frequency: str, skip_programs: list[str], until: datetime | None, now: datetime) -> Preferences:
    """The preferences as kept: programs once each in a stable order; a pause already over is no pause."""
    return Preferences(
        frequency=frequency,
        skip_programs=sorted(set(skip_programs)),
        paused_until=iso(until) if until is not None and until > now else None,
    )
