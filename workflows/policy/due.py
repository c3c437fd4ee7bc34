"""What falls due without a new event. `advance` acts on it and `next_wake` sleeps until it, both
from the same sources, so the journey's timer and its actions cannot drift apart."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from workflows.events import iso, parse_timestamp, when
from workflows.model import Ask, JourneyState
from workflows.policy.asks import asks_blocked, customer_context, decline, email, next_ask, open_ask, reminder_due
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, SendEmail
from workflows.policy.preferences import pause_end
from workflows.policy.rewards import approve, pending_holds
from workflows.policy.scoring import is_champion, note, refresh
from workflows.schedule import human_duration, seconds


@dataclass(frozen=True, kw_only=True)
class Due:
    at: datetime
    what: str  # for the timer's summary in the Web UI
    act: Callable[[], list[Effect]]


def _recovery(state: JourneyState, ctx: Policy) -> list[Due]:
    until = when(state.at_risk_until)
    if state.at_risk_since is None or not state.positive_since_risk or until is None:
        return []

    def recover() -> list[Effect]:
        state.at_risk_since = state.at_risk_until = None
        state.positive_since_risk = False
        note(state, ctx, ctx.now, "recovery", None, "recovered: cooldown over and positive signals since")
        return []

    return [Due(at=until, what="risk cooldown ends", act=recover)]


def _pause_ends(state: JourneyState, ctx: Policy) -> list[Due]:
    """A pause the customer set ends on its date: asks resume then (a durable timer, not the next event)."""
    until = pause_end(state, ctx)
    if until is None:
        return []

    def resume() -> list[Effect]:
        state.preferences.paused_until = None
        note(state, ctx, ctx.now, "preferences", None, "the customer's pause ended")
        return []

    return [Due(at=until, what="the customer's pause ends", act=resume)]


def _reward_holds(state: JourneyState, ctx: Policy) -> list[Due]:
    return [
        Due(at=hold_ends, what=f"hold on reward {reward.reward_id} ends", act=functools.partial(approve, state, reward))
        for reward, hold_ends in pending_holds(state)
    ]


def _follow_up(state: JourneyState, ctx: Policy) -> list[Due]:
    """An unanswered ask: one reminder, then it counts as declined."""
    ask = open_ask(state)
    if ask is None or asks_blocked(state):
        return []
    pb = ctx.playbook
    if ask.status == "sent" and ask.sent_at:
        return [
            Due(
                at=reminder_due(state, ctx, parse_timestamp(ask.sent_at)),
                what=f"wait for {ask.program} response, {human_duration(pb.reminder_after_seconds)}",
                act=lambda: _remind(state, ask),
            )
        ]
    if ask.status == "reminded" and ask.reminded_at:
        return [
            Due(
                at=parse_timestamp(ask.reminded_at) + seconds(pb.decline_after_seconds),
                what=f"wait for {ask.program} response after reminder, {human_duration(pb.decline_after_seconds)}",
                act=lambda: decline(state, ctx, ask),
            )
        ]
    return []


def _remind(state: JourneyState, ask: Ask) -> list[Effect]:
    return email(
        state, f"{ask.ask_id}:reminder", "reminder", "reminder",
        f"remind {state.customer_id} about {ask.program} ask {ask.ask_id}",
        ask_id=ask.ask_id, program=ask.program,
    )  # fmt: skip


def _new_ask(state: JourneyState, ctx: Policy) -> list[Due]:
    choice = next_ask(state, ctx)
    if choice is None:
        return []
    spec, at = choice

    def ask() -> list[Effect]:
        ask_id = f"{spec.name}-{len(state.asks) + 1}"
        state.asks.append(Ask(ask_id=ask_id, program=spec.name, status="scheduled", created_at=iso(ctx.now)))
        return email(
            state, f"{ask_id}:invite", f"ask_{spec.name}", "invite", f"send {spec.name} ask to {state.customer_id}",
            ask_id=ask_id, program=spec.name, link=spec.link,
        )  # fmt: skip

    return [Due(at=at, what=f"send {spec.name} ask", act=ask)]


# In the order they are acted on; between the follow-up and a new ask, champions are announced.
SOURCES = (_recovery, _pause_ends, _reward_holds, _follow_up, _new_ask)


def _act(state: JourneyState, ctx: Policy, source: Callable[[JourneyState, Policy], list[Due]]) -> list[Effect]:
    effects: list[Effect] = []
    for item in source(state, ctx):
        if item.at <= ctx.now:
            effects += item.act()
    return effects


def advance(state: JourneyState, ctx: Policy) -> list[Effect]:
    """Everything that is due at `ctx.now`: recoveries, reward holds, reminders, declines, new asks."""
    effects: list[Effect] = []
    for source in (_recovery, _pause_ends, _reward_holds, _follow_up):
        effects += _act(state, ctx, source)
    refresh(state, ctx.playbook)
    effects += _announce_champion(state, ctx)
    effects += _act(state, ctx, _new_ask)
    refresh(state, ctx.playbook)
    return effects


def next_wake(state: JourneyState, ctx: Policy) -> tuple[datetime, str] | None:
    """When something next falls due without a new event, and what, for the timer summary."""
    due = [item for source in SOURCES for item in source(state, ctx)]
    if not due:
        return None
    first = min(due, key=lambda item: item.at)
    return first.at, first.what


def _announce_champion(state: JourneyState, ctx: Policy) -> list[Effect]:
    if not is_champion(state, ctx.playbook) or state.champion_notified:
        return []
    state.champion_notified = True
    return [
        SendEmail(
            key=f"{state.customer_id}:champion:team",
            template="team_champion",
            to_email=ctx.playbook.team_email,
            step="team",
            context={"customer": customer_context(state), "score": state.score, "completed": dict(state.completed)},
            summary=f"tell the team {state.customer_id} is a champion",
        )
    ]
