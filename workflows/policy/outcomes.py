"""What came back from outside: effects that succeeded or failed for good, and the mail provider's feedback."""

from __future__ import annotations

from dataclasses import replace

from workflows.events import iso
from workflows.model import OPEN_ASK_STATUSES, JourneyState
from workflows.policy.asks import cancel_open_asks
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, RecordAsk, SendEmail, SettleReward
from workflows.policy.scoring import note, positive_moment, refresh

EMAIL_FEEDBACK_KINDS = ("undeliverable", "click")


def effect_done(state: JourneyState, ctx: Policy, effect: Effect) -> None:
    # Workflow time, not the activity's clock: the journey's timers are measured against it.
    now = ctx.now
    if isinstance(effect, SendEmail) and effect.ask_id and effect.step in ("invite", "reminder"):
        ask = next((a for a in state.asks if a.ask_id == effect.ask_id), None)
        if ask is not None and ask.status in OPEN_ASK_STATUSES:
            if effect.step == "invite":
                ask.status, ask.sent_at = "sent", iso(now)
            else:
                ask.status, ask.reminded_at = "reminded", iso(now)
    elif isinstance(effect, SettleReward) and effect.status == "issued":
        for reward in state.rewards:
            if reward.reward_id == effect.reward_id and reward.status == "approved":
                reward.status = "issued"
    refresh(state, ctx.playbook)


def effect_failed(state: JourneyState, ctx: Policy, effect: Effect, error: str) -> list[Effect]:
    """A permanent failure: shown in the state; an ask that could not be sent is cancelled."""
    now = ctx.now
    state.last_error = f"{iso(now)} {type(effect).__name__}: {error}"[:500]
    effects: list[Effect] = []
    if isinstance(effect, SendEmail) and effect.ask_id and effect.step in ("invite", "reminder"):
        ask = next((a for a in state.asks if a.ask_id == effect.ask_id), None)
        if ask is not None and ask.status in OPEN_ASK_STATUSES:
            ask.status, ask.closed_at, ask.error = "cancelled", iso(now), f"send failed: {error}"[:300]
            effects.append(RecordAsk(ask=replace(ask)))
    refresh(state, ctx.playbook)
    return effects


def email_feedback(state: JourneyState, ctx: Policy, kind: str, ask_id: str | None, reason: str) -> list[Effect]:
    """What the mail provider told us. An undeliverable address stops email asks (open ones are cancelled)
    until the profile brings a new address; a click on an ask's link is engagement: a positive moment."""
    now = ctx.now
    effects: list[Effect] = []
    if kind == "undeliverable":
        state.email_undeliverable = (reason or "undeliverable")[:200]
        effects += cancel_open_asks(state, now, f"email undeliverable: {state.email_undeliverable}")
    elif kind == "click":
        ask = next((a for a in state.asks if a.ask_id == ask_id), None)
        if ask is not None and ask.clicked_at is None:
            ask.clicked_at = iso(now)
        what = f"the {ask.program} ask" if ask is not None else "an email"
        note(state, ctx, now, "email_click", "email_click", f"clicked the link in {what}")
        positive_moment(state, now)
    refresh(state, ctx.playbook)
    return effects
