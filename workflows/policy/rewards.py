"""Rewards: built in one place, pending through their hold, within the annual cap, approved exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from workflows.events import iso, parse_timestamp
from workflows.model import JourneyState, Reward
from workflows.playbook import Playbook
from workflows.policy.asks import email
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, RecordReward, SettleReward
from workflows.schedule import seconds

_YEAR = timedelta(days=365)
_CENT = Decimal("0.01")


def grant(
    state: JourneyState,
    ctx: Policy,
    *,
    reward_id: str,
    program: str,
    amount: float,
    currency: str,
    kind: str,
    hold_seconds: float,
    beneficiary: str = "advocate",
    referral_id: str | None = None,
) -> list[Effect]:
    """A new pending reward, held for `hold_seconds`, recorded in the ledger."""
    reward = Reward(
        reward_id=reward_id,
        program=program,
        amount=amount,
        currency=currency,
        status="pending",
        kind=kind,
        beneficiary=beneficiary,
        referral_id=referral_id,
        created_at=iso(ctx.now),
        hold_until=iso(ctx.now + seconds(hold_seconds)),
    )
    state.rewards.append(reward)
    return [RecordReward(reward=replace(reward))]


def has_reward(state: JourneyState, reward_id: str) -> bool:
    return any(r.reward_id == reward_id for r in state.rewards)


def cap_remaining(state: JourneyState, ctx: Policy) -> float:
    """What the annual cap on advocate rewards still allows (the last 365 days)."""
    since = ctx.now - _YEAR
    spent = sum(
        r.amount
        for r in state.rewards
        if r.beneficiary == "advocate"
        and r.status != "void"
        and r.created_at is not None
        and parse_timestamp(r.created_at) > since
    )
    return max(0.0, round(ctx.playbook.annual_reward_cap - spent, 2))


def deal_value(pb: Playbook, amount: float | None, currency: str | None) -> Decimal | None:
    """A deal's amount in the referral reward currency, exactly; None when the playbook has no rate for it."""
    value = Decimal(str(amount or 0))
    if not currency or currency == pb.referral_reward.currency:
        return value
    rate = pb.currency_rates.get(currency)
    return None if rate is None else value * Decimal(rate)


def referral_reward_for(pb: Playbook, value: Decimal) -> float:
    """The advocate's reward for a deal worth `value` in the reward currency, in Decimal to the cent."""
    spec = pb.referral_reward
    percent = (value * Decimal(str(spec.percent)) / 100).quantize(_CENT, ROUND_HALF_EVEN)
    flat = Decimal(str(spec.flat))
    if spec.mode == "flat":
        return float(flat)
    if spec.mode == "percent":
        return float(percent)
    return float(max(flat, percent))


def referral_amount(pb: Playbook, deal_amount: float | None) -> float:
    """How journeys recorded before `referral-deal-currency` computed it: in floats, whatever the deal's currency."""
    spec = pb.referral_reward
    percent = round((deal_amount or 0.0) * spec.percent / 100.0, 2)
    if spec.mode == "flat":
        return spec.flat
    if spec.mode == "percent":
        return percent
    return max(spec.flat, percent)


def pending_holds(state: JourneyState) -> list[tuple[Reward, datetime]]:
    """Pending rewards with the moment their hold ends."""
    return [(r, parse_timestamp(r.hold_until)) for r in state.rewards if r.status == "pending" and r.hold_until]


def approve(state: JourneyState, reward: Reward) -> list[Effect]:
    """The hold is over: issue the reward and tell the advocate."""
    reward.status = "approved"
    effects: list[Effect] = [SettleReward(reward_id=reward.reward_id, status="issued")]
    if reward.beneficiary == "advocate":
        effects += email(
            state, f"reward-{reward.reward_id}:notice", "reward_notice", "reward",
            f"tell {state.customer_id} about reward {reward.reward_id}",
            reward={"amount": reward.amount, "currency": reward.currency, "kind": reward.kind, "program": reward.program},
            program=reward.program,
        )  # fmt: skip
    return effects


def void_pending(state: JourneyState, referral_id: str, why: str) -> list[Effect]:
    effects: list[Effect] = []
    for reward in state.rewards:
        if reward.referral_id == referral_id and reward.status == "pending":
            reward.status = "void"
            reward.void_reason = why
            effects.append(SettleReward(reward_id=reward.reward_id, status="void", reason=why))
    return effects
