"""Business hours in the customer's own time zone. Pure and deterministic (tz data only)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.playbook import BusinessHours


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    raise AssertionError("UTC is always available")


def is_known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def next_business_time(moment: datetime, tz_name: str | None, hours: BusinessHours | None) -> datetime:
    """`moment` if it falls in business hours, else the next opening, in UTC."""
    if hours is None:
        return moment
    tz = zone(tz_name, hours.default_timezone)
    local = moment.astimezone(tz)
    for day in range(8):
        date = local.date() + timedelta(days=day)
        if date.weekday() not in hours.weekdays:
            continue
        opening = datetime.combine(date, time(hours.start_hour), tzinfo=tz)
        closing = datetime.combine(date, time(0), tzinfo=tz) + timedelta(hours=hours.end_hour)
        if local < opening:
            return opening.astimezone(timezone.utc)
        if local < closing:
            return moment
    raise AssertionError("a week always has a business day")  # weekdays is never empty


def seconds(amount: float) -> timedelta:
    """The playbook keeps durations in seconds."""
    return timedelta(seconds=amount)


def human_duration(amount: float) -> str:
    """7 days, 2 hours, 30 seconds: for summaries people read in the Web UI."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if amount >= size:
            count = round(amount / size, 1)
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    count = round(amount, 1)
    return f"{count:g} second{'' if count == 1 else 's'}"
