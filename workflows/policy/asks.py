"""Asks and their budget: when one may go out, reminders, declines, and backing off at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from workflows import patches
from workflows.events import iso, parse_timestamp, when
from workflows.model import OPEN_ASK_STATUSES, Ask, JourneyState, Preferences
from workflows.playbook import Playbook, ProgramSpec
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, RecordAsk, SendEmail
from workflows.policy.ladder import pick_program, requirements
from workflows.policy.preferences import normalized, paused_until, skipped, spacing_next
from workflows.policy.scoring import note, refresh
from workflows.schedule import next_business_time, seconds


def open_ask(state: JourneyState) -> Ask | None:
    for ask in reversed(state.asks):
        if ask.status in OPEN_ASK_STATUSES:
            return ask
    return None


def asks_blocked(state: JourneyState) -> bool:
    return state.paused or state.opted_out or state.churned


def customer_context(state: JourneyState) -> dict[str, Any]:
    name = state.profile.name or ""
    return {
        "customer_id": state.customer_id,
        "name": name,
        "first_name": name.split(" ")[0] if name else "",
        "company": state.profile.company or "",
        "email": state.profile.email or "",
    }


def email(state: JourneyState, key: str, template: str, step: str, summary: str, **ctx: Any) -> list[Effect]:
    """An email to the customer, unless they cannot or must not receive one."""
    if state.opted_out or not state.profile.email or state.email_undeliverable:
        return []
    context = {"customer": customer_context(state), "referral_code": state.referral_code, **ctx}
    return [
        SendEmail(
            key=f"{state.customer_id}:{key}",
            template=template,
            to_email=state.profile.email,
            step=step,
            ask_id=ctx.get("ask_id"),
            program=ctx.get("program"),
            context=context,
            summary=summary,
        )
    ]


def cancel_open_asks(state: JourneyState, now: datetime, why: str) -> list[Effect]:
    effects: list[Effect] = []
    for ask in state.asks:
        if ask.status in OPEN_ASK_STATUSES:
            ask.status = "cancelled"
            ask.closed_at = iso(now)
            ask.error = why
            effects.append(RecordAsk(ask=replace(ask)))
    return effects


def enter_risk(state: JourneyState, ctx: Policy, why: str) -> list[Effect]:
    """Satisfaction dropped: back off at once (open asks cancelled) until a cooldown and a positive signal."""
    if state.at_risk_since is None:
        state.at_risk_since = iso(ctx.now)
    state.at_risk_until = iso(ctx.now + seconds(ctx.playbook.risk_cooldown_seconds))
    state.positive_since_risk = False
    return cancel_open_asks(state, ctx.now, f"at risk: {why}")


def decline(state: JourneyState, ctx: Policy, ask: Ask) -> list[Effect]:
    ask.status = "declined"
    ask.closed_at = iso(ctx.now)
    state.cooldown_until = iso(ctx.now + seconds(ctx.playbook.decline_cooldown_seconds))
    return [RecordAsk(ask=replace(ask))]


def close_open_ask(state: JourneyState, ctx: Policy, program: str) -> list[Effect]:
    for ask in state.asks:
        if ask.program == program and ask.status in OPEN_ASK_STATUSES:
            return decline(state, ctx, ask)
    return []


def opt_out(state: JourneyState, now: datetime, why: str) -> list[Effect]:
    effects = cancel_open_asks(state, now, f"opted out: {why}")
    state.opted_out = True
    return effects


def churn(state: JourneyState, ctx: Policy, why: str) -> list[Effect]:
    effects = cancel_open_asks(state, ctx.now, f"churned: {why}")
    state.churned = True
    refresh(state, ctx.playbook)
    return effects


def set_preferences(state: JourneyState, ctx: Policy, wanted: Preferences) -> tuple[bool, list[Effect]]:
    """The customer's preferences from their page. The same preferences again change nothing; a pause, or a
    program they no longer want, cancels the open ask it covers (no reminder follows)."""
    until = when(wanted.paused_until)
    kept = normalized(wanted.frequency, wanted.skip_programs, until, ctx.now)
    if replace(state.preferences, updated_at=None) == kept:
        return False, []
    kept.updated_at = iso(ctx.now)
    state.preferences = kept
    note(state, ctx, ctx.now, "preferences", None, _describe(kept))
    effects: list[Effect] = []
    ask = open_ask(state)
    if ask is not None and paused_until(state, ctx) is not None:
        effects += cancel_open_asks(state, ctx.now, f"paused by the customer until {kept.paused_until}")
    elif ask is not None and skipped(state, ctx, ask.program):
        effects += cancel_open_asks(state, ctx.now, f"the customer is not interested in {ask.program}")
    return True, effects


def _describe(p: Preferences) -> str:
    parts = [f"asks: {p.frequency}"]
    if p.skip_programs:
        parts.append("not interested in " + ", ".join(p.skip_programs))
    if p.paused_until:
        parts.append(f"paused until {p.paused_until}")
    return "preferences set by the customer: " + "; ".join(parts)


def budget_next(state: JourneyState, pb: Playbook, now: datetime) -> datetime:
    """Earliest moment at or after `now` when one more ask fits the cross-program budget."""
    created = sorted(parse_timestamp(a.created_at) for a in state.asks)
    earliest = now
    if created:
        earliest = max(earliest, created[-1] + seconds(pb.ask_min_gap_seconds))
    window = seconds(pb.ask_window_seconds)
    recent = [t for t in created if t > now - window]
    if len(recent) >= pb.ask_max_per_window:
        earliest = max(earliest, recent[len(recent) - pb.ask_max_per_window] + window)
    return earliest


def next_ask(state: JourneyState, ctx: Policy) -> tuple[ProgramSpec, datetime] | None:
    """Which program to ask for next and from when, or None while no ask may go out."""
    plan = plan_ask(state, ctx)
    return None if plan.spec is None or plan.at is None else (plan.spec, plan.at)


@dataclass(frozen=True)
class AskPlan:
    """The next ask (program and moment), or why there is none: what the `ask_outlook` says."""

    spec: ProgramSpec | None
    at: datetime | None
    why: str


def plan_ask(state: JourneyState, ctx: Policy) -> AskPlan:
    pb = ctx.playbook
    for blocked, why in (
        (state.churned, "the customer churned"),
        (state.opted_out, "the customer opted out"),
        (state.paused, "paused by ops"),
        (paused_until(state, ctx) is not None, f"paused by the customer until {state.preferences.paused_until}"),
        (state.at_risk_since is not None, f"at risk since {state.at_risk_since}: asks wait for the cooldown and a positive signal"),
        (not state.profile.email, "no email address yet (no customer_profile)"),
        (state.email_undeliverable is not None, f"the email address is undeliverable ({state.email_undeliverable})"),
    ):  # fmt: skip
        if blocked:
            return AskPlan(None, None, f"not asking: {why}")
    current = open_ask(state)
    if current is not None:
        return AskPlan(None, None, f"waiting for the answer to the {current.program} ask ({current.status})")
    moment = when(state.last_positive_at)
    if moment is None:
        return AskPlan(None, None, "not asking: no moment of delight yet (a promoter NPS, a milestone, ...)")
    spec = pick_program(state, ctx)
    if spec is None:
        if all(skipped(state, ctx, p.name) for p in pb.programs):
            return AskPlan(None, None, "not asking: the customer is interested in none of the programs")
        return AskPlan(None, None, f"not asking: not qualified for any program ({_qualification(state, ctx)})")
    budget = budget_next(state, pb, ctx.now)
    not_before, why = budget, "the ask budget" if budget > ctx.now else ""
    cooldown = when(state.cooldown_until)
    if cooldown is not None and cooldown > not_before:
        not_before, why = cooldown, "the cooldown after a decline"
    spacing = spacing_next(state, ctx)
    chosen = f"the customer chose {state.preferences.frequency}"
    if spacing is not None and spacing > not_before:
        not_before, why = spacing, chosen
    aligned = next_business_time(not_before, state.profile.timezone, pb.business_hours)
    if aligned > not_before:
        not_before, why = aligned, why or "business hours"
    window_ends = moment + seconds(pb.moment_window_seconds)
    if not_before > window_ends and not (_rung_open(state, spec) and ctx.patched(patches.PROGRAM_QUALIFICATION)):
        # The moment will have passed: wait for the next positive signal.
        if why == chosen:
            return AskPlan(None, None, f"not asking: {chosen}: next ask from {iso(not_before)}, when the moment "
                                       f"of {iso(moment)} has passed; waiting for the next one")  # fmt: skip
        return AskPlan(None, None, f"not asking: the moment of {iso(moment)} passes before {why} allows "
                                   f"the {spec.name} ask ({iso(not_before)}); waiting for the next one")  # fmt: skip
    if why == chosen:
        return AskPlan(spec, not_before, f"{chosen}: next ask from {iso(not_before)} ({spec.name})")
    return AskPlan(spec, not_before, f"next: {spec.name} ask at {iso(not_before)}" + (f", after {why}" if why else ""))


def _rung_open(state: JourneyState, spec: ProgramSpec) -> bool:
    """A rung completed since the last ask opens the next one until the budget allows it (demonstrated
    advocacy is not a passing mood), for programs that build on completed activities."""
    if not (spec.min_completed or spec.requires_champion):
        return False
    completions = [parse_timestamp(at) for at in state.last_completed_at.values()]
    last_ask = max((parse_timestamp(a.created_at) for a in state.asks), default=None)
    return bool(completions) and (last_ask is None or max(completions) > last_ask)


def _qualification(state: JourneyState, ctx: Policy) -> str:
    pb = ctx.playbook
    rest = [spec for spec in pb.programs if not state.completed.get(spec.name)] or pb.programs
    spec = rest[0]
    return f"score {state.score}, tier {state.tier}; {spec.name} needs {requirements(spec)}"


def reminder_due(state: JourneyState, ctx: Policy, sent: datetime) -> datetime:
    """When an unanswered ask gets its reminder: `reminder_after` past the send, in business hours
    (a week later can be outside them across a daylight-saving change; other delays, on a weekend)."""
    pb = ctx.playbook
    due = sent + seconds(pb.reminder_after_seconds)
    aligned = next_business_time(due, state.profile.timezone, pb.business_hours)
    return aligned if aligned != due and ctx.patched(patches.REMINDERS_IN_BUSINESS_HOURS) else due
