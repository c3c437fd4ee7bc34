"""Scoring: the explainable score log, fit + results - risk, tiers, stages and champion status."""

from __future__ import annotations

from datetime import datetime

from workflows.events import iso, when
from workflows.model import JourneyState, ScoreEntry
from workflows.playbook import Playbook
from workflows.policy.context import Policy

MAX_REASON = 300


def note(state: JourneyState, ctx: Policy, at: datetime, event_type: str, weight: str | None, reason: str) -> int:
    """Move the score by the playbook's weight for `weight` (none: just log why) and log it."""
    pb = ctx.playbook
    delta = pb.signals[weight] if weight else 0
    if delta > 0:
        state.results = min(70, state.results + delta)
        state.risk = max(0, state.risk - delta)
    elif delta < 0:
        state.risk = min(100, state.risk - delta)
    # Reasons quote event text: kept to a bound (workflows.policy.budget).
    state.score_log.append(ScoreEntry(at=iso(at), event_type=event_type, delta=delta, reason=reason[:MAX_REASON]))
    del state.score_log[: -pb.max_signals_kept]
    return delta


def positive_moment(state: JourneyState, at: datetime) -> None:
    """A moment of delight: asks may go out within the playbook's moment window after it."""
    last = when(state.last_positive_at)
    if last is None or at > last:
        state.last_positive_at = iso(at)
    since = when(state.at_risk_since)
    if since is not None and at >= since:
        state.positive_since_risk = True


def completed_total(state: JourneyState) -> int:
    return sum(state.completed.values())


def is_champion(state: JourneyState, pb: Playbook) -> bool:
    recent = state.nps_history[-pb.champion_sustained_nps :]
    return (
        completed_total(state) >= pb.champion_min_completed
        and len(recent) >= pb.champion_sustained_nps
        and all(score >= pb.promoter_min for score in recent)
        and state.at_risk_since is None
    )


def derive_stage(state: JourneyState, pb: Playbook) -> str:
    if state.churned:
        return "churned"
    if state.opted_out:
        return "opted_out"
    if state.at_risk_since is not None:
        return "at_risk"
    if is_champion(state, pb):
        return "champion"
    if completed_total(state) > 0:
        return "advocate"
    if any(ask.sent_at for ask in state.asks):
        return "engaged"
    if state.score >= pb.qualify_score:
        return "qualified"
    return "listening"


def refresh(state: JourneyState, pb: Playbook) -> None:
    state.score = max(0, min(100, state.fit + state.results - state.risk))
    state.tier = "none"
    for tier in pb.tiers:
        if state.score >= tier.min_score:
            state.tier = tier.name
    state.stage = derive_stage(state, pb)


def flags(state: JourneyState) -> list[str]:
    """What ops filter journeys by (the AdvocacyFlags search attribute)."""
    on = {
        "paused": state.paused,
        "opted_out": state.opted_out,
        "at_risk": state.at_risk_since is not None,
        "email_undeliverable": state.email_undeliverable is not None,
        "send_failed": "SendEmail:" in (state.last_error or ""),
        "referral_reward_pending": any(r.status == "pending" and r.program == "referral" for r in state.rewards),
    }
    return sorted(name for name, value in on.items() if value)
