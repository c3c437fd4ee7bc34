"""The journey's policy as pure functions over (state, playbook, now).

The workflow only sequences these: it feeds events in, runs the effects they
return as activities, reports each effect's outcome back, and sleeps until
`next_wake`. No I/O, no clocks, no randomness here, so the same code runs in
the workflow sandbox, in property tests and in the simulator.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from workflows.events import iso, parse_timestamp
from workflows.model import (
    OPEN_ASK_STATUSES,
    Ask,
    CustomerEvent,
    JourneyState,
    Referral,
    Reward,
    Signal,
)
from workflows.playbook import Playbook, ProgramSpec
from workflows.schedule import next_business_time

# ---- effects: what the workflow must make happen ------------------------------------


@dataclass
class SendEmail:
    key: str
    template: str
    to_email: str
    step: str  # invite | reminder | thanks | reward | team
    ask_id: str | None = None
    program: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass
class RecordAsk:
    ask: Ask


@dataclass
class RecordReward:
    reward: Reward


@dataclass
class SettleReward:
    reward_id: str
    status: str  # issued | void
    reason: str | None = None


@dataclass
class RecordReferral:
    referral: Referral


@dataclass
class RecordCustomer:
    pass


Effect = SendEmail | RecordAsk | RecordReward | SettleReward | RecordReferral | RecordCustomer

# Fixes that change what a running journey would do ask `patched(name)` at the point where old and new
# code part ways; the workflow passes `workflow.patched`, so histories recorded before a fix replay as
# they ran. Outside a workflow (tests, simulation) every fix applies.
Patched = Callable[[str], bool]
REFEREE_INCENTIVE_ONCE = "referee-incentive-once"
REMINDERS_IN_BUSINESS_HOURS = "reminders-in-business-hours"
ORGANIC_COMPLETION_ONCE = "organic-completion-once"


def _every_fix(name: str) -> bool:
    return True


POSITIVE = "positive"
_RISK_RANK = {"low": 0, "medium": 1, "high": 2}
_YEAR = timedelta(days=365)


def _t(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value, "timestamp")


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


def human_duration(seconds: float) -> str:
    """7 days, 2 hours, 30 seconds: for summaries people read in the Web UI."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size, 1)
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    count = round(seconds, 1)
    return f"{count:g} second{'' if count == 1 else 's'}"


def _secs(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# ---- derived facts ------------------------------------------------------------------


def open_ask(state: JourneyState) -> Ask | None:
    for ask in reversed(state.asks):
        if ask.status in OPEN_ASK_STATUSES:
            return ask
    return None


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


def reward_cap_remaining(state: JourneyState, pb: Playbook, now: datetime) -> float:
    since = now - _YEAR
    spent = sum(
        r.amount
        for r in state.rewards
        if r.beneficiary == "advocate"
        and r.status != "void"
        and r.created_at is not None
        and parse_timestamp(r.created_at) > since
    )
    return max(0.0, round(pb.annual_reward_cap - spent, 2))


def referral_id_for(customer_id: str, referee_email: str) -> str:
    digest = hashlib.sha256(f"{customer_id}|{referee_email.lower()}".encode()).hexdigest()
    return f"ref-{digest[:12]}"


_FREE_MAIL = {"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "protonmail.com"}


def referral_refusal(state: JourneyState, referee_email: str) -> str | None:
    """Why a referral must be refused, or None. Used by the update validator and the event path."""
    email = referee_email.strip().lower()
    own = (state.profile.email or "").lower()
    if own and email == own:
        return "self-referral: the referee email is the advocate's own"
    own_domain = own.rpartition("@")[2]
    if own_domain and own_domain not in _FREE_MAIL and email.rpartition("@")[2] == own_domain:
        return f"self-referral: the referee is at the advocate's own company domain {own_domain}"
    if any(r.referee_email == email for r in state.referrals):
        return "duplicate: this referee was already referred by this advocate"
    return None


# ---- applying events ----------------------------------------------------------------


def _signal(state: JourneyState, pb: Playbook, at: datetime, event_type: str, key: str | None, reason: str) -> int:
    delta = pb.signals[key] if key else 0
    if delta > 0:
        state.results = min(70, state.results + delta)
        state.risk = max(0, state.risk - delta)
    elif delta < 0:
        state.risk = min(100, state.risk - delta)
    state.signals.append(Signal(at=iso(at), event_type=event_type, delta=delta, reason=reason))
    del state.signals[: -pb.max_signals_kept]
    return delta


def _positive_moment(state: JourneyState, at: datetime) -> None:
    last = _t(state.last_positive_at)
    if last is None or at > last:
        state.last_positive_at = iso(at)
    since = _t(state.at_risk_since)
    if since is not None and at >= since:
        state.positive_since_risk = True


def _enter_risk(state: JourneyState, pb: Playbook, now: datetime, why: str) -> list[Effect]:
    effects: list[Effect] = []
    if state.at_risk_since is None:
        state.at_risk_since = iso(now)
    state.at_risk_until = iso(now + _secs(pb.risk_cooldown_seconds))
    state.positive_since_risk = False
    effects += _cancel_open_asks(state, now, f"at risk: {why}")
    return effects


def _cancel_open_asks(state: JourneyState, now: datetime, why: str) -> list[Effect]:
    effects: list[Effect] = []
    for ask in state.asks:
        if ask.status in OPEN_ASK_STATUSES:
            ask.status = "cancelled"
            ask.closed_at = iso(now)
            ask.error = why
            effects.append(RecordAsk(replace(ask)))
    return effects


def _customer_context(state: JourneyState) -> dict[str, Any]:
    name = state.profile.name or ""
    return {
        "customer_id": state.customer_id,
        "name": name,
        "first_name": name.split(" ")[0] if name else "",
        "company": state.profile.company or "",
        "email": state.profile.email or "",
    }


def _email(state: JourneyState, key: str, template: str, step: str, summary: str, **ctx: Any) -> list[Effect]:
    """An email to the customer, unless they cannot or must not receive one."""
    if state.opted_out or not state.profile.email or state.email_undeliverable:
        return []
    context = {"customer": _customer_context(state), "referral_code": state.referral_code, **ctx}
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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _complete_activity(
    state: JourneyState, pb: Playbook, program: str, now: datetime, reward_key: str, patched: Patched = _every_fix
) -> list[Effect]:
    effects: list[Effect] = []
    ask = next((a for a in reversed(state.asks) if a.program == program and a.status in OPEN_ASK_STATUSES), None)
    key = f"{program}-{reward_key}"
    # A second review on the same site without an ask (the platform re-sending it, an edit) used to count
    # as another activity and send a thank-you that the outbox then dropped as a duplicate.
    if ask is None and key in state.completion_keys and patched(ORGANIC_COMPLETION_ONCE):
        _signal(state, pb, now, program, None, f"{program} already counted ({reward_key})")
        return effects
    if key not in state.completion_keys:
        state.completion_keys.append(key)
    if ask is not None:
        ask.status = "completed"
        ask.completed_at = iso(now)
        ask.closed_at = iso(now)
        effects.append(RecordAsk(replace(ask)))
    state.completed[program] = state.completed.get(program, 0) + 1
    state.last_completed_at[program] = iso(now)
    _signal(state, pb, now, program, "activity_completed", f"{program} completed")
    _positive_moment(state, now)
    ask_ref = ask.ask_id if ask else f"organic-{reward_key}"
    effects += _email(
        state, f"{ask_ref}:thanks", "thank_you", "thanks", f"thank {state.customer_id} for the {program}",
        program=program, ask_id=ask.ask_id if ask else None,
    )  # fmt: skip
    spec = _program_or_none(pb, program)
    if spec is not None and spec.reward is not None:
        reward_id = f"{program}-{reward_key}"
        if not any(r.reward_id == reward_id for r in state.rewards):
            amount = min(spec.reward.amount, reward_cap_remaining(state, pb, now))
            if spec.reward.amount > 0 and amount <= 0:
                _signal(state, pb, now, program, None, "annual reward cap reached: no reward")
            else:
                reward = Reward(
                    reward_id=reward_id,
                    program=program,
                    amount=amount,
                    currency=spec.reward.currency,
                    status="pending",
                    kind=spec.reward.kind,
                    created_at=iso(now),
                    hold_until=iso(now + _secs(spec.reward.hold_seconds)),
                )
                state.rewards.append(reward)
                effects.append(RecordReward(replace(reward)))
    return effects


def _program_or_none(pb: Playbook, name: str) -> ProgramSpec | None:
    try:
        return pb.program(name)
    except KeyError:
        return None


def add_referral(
    state: JourneyState,
    pb: Playbook,
    now: datetime,
    referee_email: str,
    referee_name: str | None,
    referee_company: str | None,
) -> tuple[Referral | None, list[Effect]]:
    email = referee_email.strip().lower()
    rid = referral_id_for(state.customer_id, email)
    existing = next((r for r in state.referrals if r.referral_id == rid), None)
    if existing is not None:
        return existing, []
    refusal = referral_refusal(state, email)
    if refusal:
        _signal(state, pb, now, "referral_submitted", None, f"referral refused: {refusal}")
        return None, []
    referral = Referral(
        referral_id=rid,
        referee_email=email,
        status="submitted",
        submitted_at=iso(now),
        referee_name=referee_name,
        referee_company=referee_company,
        updated_at=iso(now),
    )
    state.referrals.append(referral)
    effects: list[Effect] = [RecordReferral(replace(referral))]
    effects += _complete_activity(state, pb, "referral", now, rid)
    return referral, effects


def _referral_reward_amount(pb: Playbook, deal_amount: float | None) -> float:
    spec = pb.referral_reward
    percent = round((deal_amount or 0.0) * spec.percent / 100.0, 2)
    if spec.mode == "flat":
        return spec.flat
    if spec.mode == "percent":
        return percent
    return max(spec.flat, percent)


def _convert_referral(
    state: JourneyState, pb: Playbook, ev: CustomerEvent, now: datetime, patched: Patched
) -> list[Effect]:
    data = ev.data
    effects: list[Effect] = []
    referral = None
    if data.get("referral_id"):
        referral = next((r for r in state.referrals if r.referral_id == data["referral_id"]), None)
    if referral is None and data.get("referee_email"):
        email = str(data["referee_email"]).lower()
        referral = next((r for r in state.referrals if r.referee_email == email), None)
        if referral is None:
            # Referred outside our links (e.g. entered in the CRM): track it all the same.
            referral = Referral(
                referral_id=referral_id_for(state.customer_id, email),
                referee_email=email,
                status="submitted",
                submitted_at=iso(now),
            )
            state.referrals.append(referral)
    if referral is None:
        _signal(state, pb, now, ev.type, None, f"unknown referral {data.get('referral_id')!r}: ignored")
        return []
    stage = data["stage"]
    was = referral.status
    referral.updated_at = iso(now)
    if data.get("amount") is not None:
        referral.amount = float(data["amount"])
    if data.get("currency"):
        referral.currency = data["currency"]
    spec = pb.referral_reward
    if stage == "opportunity":
        if was in ("submitted", "opportunity"):
            referral.status = "opportunity"
    elif stage == "won":
        referral.status = "won"
        _positive_moment(state, now)
        reward_id = f"referral-{referral.referral_id}"
        if not any(r.reward_id == reward_id for r in state.rewards):
            wanted = _referral_reward_amount(pb, referral.amount)
            amount = min(wanted, reward_cap_remaining(state, pb, now))
            hold_until = iso(now + _secs(spec.hold_seconds))
            if amount > 0:
                reward = Reward(
                    reward_id=reward_id, program="referral", amount=amount, currency=spec.currency,
                    status="pending", kind=spec.kind, referral_id=referral.referral_id,
                    created_at=iso(now), hold_until=hold_until,
                )  # fmt: skip
                state.rewards.append(reward)
                effects.append(RecordReward(replace(reward)))
            else:
                _signal(state, pb, now, ev.type, None, "annual reward cap reached: no referral reward")
            incentive_id = f"referee-{referral.referral_id}"
            # A second "won" after the annual cap left no advocate reward used to add the incentive again.
            given = any(r.reward_id == incentive_id for r in state.rewards) and patched(REFEREE_INCENTIVE_ONCE)
            if spec.referee_amount > 0 and not given:
                incentive = Reward(
                    reward_id=incentive_id, program="referral",
                    amount=spec.referee_amount, currency=spec.referee_currency, status="pending",
                    kind=spec.referee_kind, beneficiary="referee", referral_id=referral.referral_id,
                    created_at=iso(now), hold_until=hold_until,
                )  # fmt: skip
                state.rewards.append(incentive)
                effects.append(RecordReward(replace(incentive)))
    elif stage == "lost":
        referral.status = "lost"
        why = "refunded within the hold period" if was == "won" else "deal lost"
        for reward in state.rewards:
            if reward.referral_id == referral.referral_id and reward.status == "pending":
                reward.status = "void"
                reward.void_reason = why
                effects.append(SettleReward(reward.reward_id, "void", why))
    effects.insert(0, RecordReferral(replace(referral)))
    return effects


def apply_event(
    state: JourneyState, pb: Playbook, ev: CustomerEvent, now: datetime, patched: Patched = _every_fix
) -> list[Effect]:
    """Apply one validated event. Duplicates (same event_id) change nothing."""
    if ev.event_id in state.seen_event_ids:
        return []
    state.seen_event_ids.append(ev.event_id)
    del state.seen_event_ids[: -pb.max_event_ids_kept]
    state.events_applied += 1
    # Never trust a timestamp from the future: it would pin "latest" values forever.
    at = min(parse_timestamp(ev.occurred_at), now)
    effects = _apply(state, pb, ev, at, now, patched)
    refresh(state, pb)
    return effects


def _newer(current: str | None, at: datetime) -> bool:
    last = _t(current)
    return last is None or at >= last


def _apply(
    state: JourneyState, pb: Playbook, ev: CustomerEvent, at: datetime, now: datetime, patched: Patched
) -> list[Effect]:
    data, kind = ev.data, ev.type
    effects: list[Effect] = []
    if kind == "customer_profile":
        if _newer(state.profile.updated_at, at):
            p = state.profile
            if data["email"].lower() != p.email:
                state.email_undeliverable = None  # a new address gets a new chance
            p.email, p.name, p.company = data["email"].lower(), data["name"], data["company"]
            for key in ("timezone", "locale", "segment", "plan"):
                if data.get(key) is not None:
                    setattr(p, key, data[key])
            p.updated_at = iso(at)
            state.fit = min(30, sum(pb.fit.get(k, {}).get(str(getattr(p, k) or ""), 0) for k in ("segment", "plan")))
            effects.append(RecordCustomer())
    elif kind == "nps_response":
        score = data["score"]
        newest = _newer(state.last_nps_at, at)
        if newest:
            state.last_nps, state.last_nps_at = score, iso(at)
            state.nps_history.append(score)
            del state.nps_history[:-12]
        if score >= pb.promoter_min:
            _signal(state, pb, at, kind, "nps_promoter", f"promoter NPS {score}")
            _positive_moment(state, at)
        elif score <= pb.detractor_max:
            _signal(state, pb, at, kind, "nps_detractor", f"detractor NPS {score}")
            if newest:
                effects += _enter_risk(state, pb, now, f"detractor NPS {score}")
        else:
            _signal(state, pb, at, kind, "nps_passive", f"passive NPS {score}")
    elif kind == "csat_response":
        score = data["score"]
        if score >= 4:
            _signal(state, pb, at, kind, "csat_high", f"CSAT {score}")
            _positive_moment(state, at)
        elif score <= 2:
            _signal(state, pb, at, kind, "csat_low", f"CSAT {score}")
        else:
            _signal(state, pb, at, kind, None, f"neutral CSAT {score}")
    elif kind == "usage_milestone":
        _signal(state, pb, at, kind, "usage_milestone", f"milestone {data['milestone']}")
        _positive_moment(state, at)
    elif kind == "support_resolved":
        satisfied = data.get("satisfied")
        if satisfied is True:
            _signal(
                state, pb, at, kind, "support_resolved_satisfied", f"ticket {data['ticket_id']} resolved, satisfied"
            )
            _positive_moment(state, at)
        elif satisfied is False:
            _signal(
                state, pb, at, kind, "support_resolved_unsatisfied", f"ticket {data['ticket_id']} resolved, unsatisfied"
            )
        else:
            _signal(state, pb, at, kind, None, f"ticket {data['ticket_id']} resolved")
    elif kind == "support_escalation":
        _signal(state, pb, at, kind, "support_escalation", f"ticket {data['ticket_id']} escalated")
        effects += _enter_risk(state, pb, now, f"support escalation {data['ticket_id']}")
    elif kind == "renewal":
        _signal(state, pb, at, kind, "renewal", "renewed")
        _positive_moment(state, at)
    elif kind == "social_mention":
        sentiment = data["sentiment"]
        if sentiment == POSITIVE:
            _signal(state, pb, at, kind, "social_positive", "positive social mention")
            _positive_moment(state, at)
        elif sentiment == "negative":
            _signal(state, pb, at, kind, "social_negative", "negative social mention")
        else:
            _signal(state, pb, at, kind, None, "neutral social mention")
    elif kind == "churn_risk":
        level = data["level"]
        state.churn_risk = level
        _signal(state, pb, at, kind, f"churn_risk_{level}", f"churn risk {level}")
        if level == "high":
            effects += _enter_risk(state, pb, now, "high churn risk")
        elif level == "low":
            _positive_moment(state, at)
    elif kind == "review_submitted":
        effects += _complete_activity(state, pb, "review", now, f"site-{_slug(data['site'])}", patched)
    elif kind == "reference_completed":
        effects += _complete_activity(state, pb, "reference", now, ev.event_id)
    elif kind == "case_study_published":
        effects += _complete_activity(state, pb, "case_study", now, ev.event_id)
    elif kind == "speaking_completed":
        effects += _complete_activity(state, pb, "speaking", now, ev.event_id)
    elif kind == "advisory_board_response":
        if data["accepted"]:
            effects += _complete_activity(state, pb, "advisory_board", now, "seat")
        else:
            effects += _close_open_ask(state, pb, "advisory_board", now)
    elif kind == "referral_submitted":
        _, more = add_referral(
            state, pb, now, data["referee_email"], data.get("referee_name"), data.get("referee_company")
        )
        effects += more
    elif kind == "referral_converted":
        effects += _convert_referral(state, pb, ev, now, patched)
    elif kind == "unsubscribed":
        effects += opt_out(state, now, data.get("reason") or "unsubscribed")
    return effects


def _close_open_ask(state: JourneyState, pb: Playbook, program: str, now: datetime) -> list[Effect]:
    for ask in state.asks:
        if ask.program == program and ask.status in OPEN_ASK_STATUSES:
            return _decline(state, pb, ask, now)
    return []


def _decline(state: JourneyState, pb: Playbook, ask: Ask, now: datetime) -> list[Effect]:
    ask.status = "declined"
    ask.closed_at = iso(now)
    state.cooldown_until = iso(now + _secs(pb.decline_cooldown_seconds))
    return [RecordAsk(replace(ask))]


EMAIL_FEEDBACK_KINDS = ("undeliverable", "click")


def email_feedback(
    state: JourneyState, pb: Playbook, kind: str, ask_id: str | None, reason: str, now: datetime
) -> list[Effect]:
    """What the mail provider told us. An undeliverable address stops email asks (open ones are cancelled)
    until the profile brings a new address; a click on an ask's link is engagement: a positive moment."""
    effects: list[Effect] = []
    if kind == "undeliverable":
        state.email_undeliverable = (reason or "undeliverable")[:200]
        effects += _cancel_open_asks(state, now, f"email undeliverable: {state.email_undeliverable}")
    elif kind == "click":
        ask = next((a for a in state.asks if a.ask_id == ask_id), None)
        if ask is not None and ask.clicked_at is None:
            ask.clicked_at = iso(now)
        what = f"the {ask.program} ask" if ask is not None else "an email"
        _signal(state, pb, now, "email_click", "email_click", f"clicked the link in {what}")
        _positive_moment(state, now)
    refresh(state, pb)
    return effects


def opt_out(state: JourneyState, now: datetime, why: str) -> list[Effect]:
    effects = _cancel_open_asks(state, now, f"opted out: {why}")
    state.opted_out = True
    return effects


def churn(state: JourneyState, pb: Playbook, now: datetime, why: str) -> list[Effect]:
    effects = _cancel_open_asks(state, now, f"churned: {why}")
    state.churned = True
    refresh(state, pb)
    return effects


# ---- the passage of time ------------------------------------------------------------


def _asks_blocked(state: JourneyState) -> bool:
    return state.paused or state.opted_out or state.churned


def budget_next(state: JourneyState, pb: Playbook, now: datetime) -> datetime:
    """Earliest moment at or after `now` when one more ask fits the cross-program budget."""
    created = sorted(parse_timestamp(a.created_at) for a in state.asks)
    earliest = now
    if created:
        earliest = max(earliest, created[-1] + _secs(pb.ask_min_gap_seconds))
    window = _secs(pb.ask_window_seconds)
    recent = [t for t in created if t > now - window]
    if len(recent) >= pb.ask_max_per_window:
        earliest = max(earliest, recent[len(recent) - pb.ask_max_per_window] + window)
    return earliest


def _effort_ceiling(state: JourneyState, pb: Playbook, now: datetime) -> int | None:
    """After a decline the next ask must be of lower effort, until an activity is completed
    or the decline is older than `redecline_after`."""
    last = state.asks[-1] if state.asks else None
    spec = _program_or_none(pb, last.program) if last else None
    if last is None or spec is None or last.status != "declined" or last.closed_at is None:
        return None
    declined = parse_timestamp(last.closed_at)
    if now >= declined + _secs(pb.redecline_after_seconds):
        return None
    if any(parse_timestamp(done) > declined for done in state.last_completed_at.values()):
        return None
    return spec.effort


def pick_program(state: JourneyState, pb: Playbook, now: datetime) -> ProgramSpec | None:
    total = completed_total(state)
    champion = is_champion(state, pb)
    tier_rank = pb.tier_rank(state.tier)
    effort_ceiling = _effort_ceiling(state, pb, now)
    candidates = []
    for spec in pb.programs:
        if tier_rank < pb.tier_rank(spec.min_tier) or total < spec.min_completed:
            continue
        if spec.requires_champion and not champion:
            continue
        if _RISK_RANK[state.churn_risk] > _RISK_RANK[spec.max_churn_risk]:
            continue
        if effort_ceiling is not None and spec.effort >= effort_ceiling:
            continue
        done = state.completed.get(spec.name, 0)
        if done:
            last_done = _t(state.last_completed_at.get(spec.name))
            if spec.repeat_after_seconds is None or (last_done and now < last_done + _secs(spec.repeat_after_seconds)):
                continue
        declined_recently = any(
            a.program == spec.name and a.status == "declined" and a.closed_at
            and now < parse_timestamp(a.closed_at) + _secs(pb.redecline_after_seconds)
            for a in state.asks
        )  # fmt: skip
        if declined_recently:
            continue
        candidates.append((not spec.requires_champion, done > 0, spec.effort, spec))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[:3])[3]


def next_ask(state: JourneyState, pb: Playbook, now: datetime) -> tuple[ProgramSpec, datetime] | None:
    """Which program to ask for next and from when, or None while no ask may go out."""
    if _asks_blocked(state) or state.at_risk_since is not None or not state.profile.email or state.email_undeliverable:
        return None
    if open_ask(state) is not None or state.score < pb.qualify_score:
        return None
    moment = _t(state.last_positive_at)
    if moment is None:
        return None
    spec = pick_program(state, pb, now)
    if spec is None:
        return None
    not_before = budget_next(state, pb, now)
    cooldown = _t(state.cooldown_until)
    if cooldown is not None and cooldown > not_before:
        not_before = cooldown
    not_before = next_business_time(not_before, state.profile.timezone, pb.business_hours)
    if not_before > moment + _secs(pb.moment_window_seconds):
        return None  # the moment will have passed: wait for the next positive signal
    return spec, not_before


def reminder_due(state: JourneyState, pb: Playbook, sent: datetime, patched: Patched = _every_fix) -> datetime:
    """When an unanswered ask gets its reminder: `reminder_after` past the send, in business hours
    (a week later can be outside them across a daylight-saving change; other delays, on a weekend)."""
    due = sent + _secs(pb.reminder_after_seconds)
    aligned = next_business_time(due, state.profile.timezone, pb.business_hours)
    return aligned if aligned != due and patched(REMINDERS_IN_BUSINESS_HOURS) else due


def advance(state: JourneyState, pb: Playbook, now: datetime, patched: Patched = _every_fix) -> list[Effect]:
    """Everything that is due at `now`: recoveries, reward holds, reminders, declines, new asks."""
    effects: list[Effect] = []
    until = _t(state.at_risk_until)
    if state.at_risk_since is not None and state.positive_since_risk and until is not None and now >= until:
        state.at_risk_since = state.at_risk_until = None
        state.positive_since_risk = False
        _signal(state, pb, now, "recovery", None, "recovered: cooldown over and positive signals since")
    for reward in state.rewards:
        hold = _t(reward.hold_until)
        if reward.status == "pending" and hold is not None and now >= hold:
            reward.status = "approved"
            effects.append(SettleReward(reward.reward_id, "issued"))
            if reward.beneficiary == "advocate":
                effects += _email(
                    state, f"reward-{reward.reward_id}:notice", "reward_notice", "reward",
                    f"tell {state.customer_id} about reward {reward.reward_id}",
                    reward={"amount": reward.amount, "currency": reward.currency, "kind": reward.kind, "program": reward.program},
                    program=reward.program,
                )  # fmt: skip
    ask = open_ask(state)
    if ask is not None and not _asks_blocked(state):
        sent = _t(ask.sent_at)
        reminded = _t(ask.reminded_at)
        if ask.status == "sent" and sent and now >= reminder_due(state, pb, sent, patched):
            effects += _email(
                state, f"{ask.ask_id}:reminder", "reminder", "reminder",
                f"remind {state.customer_id} about {ask.program} ask {ask.ask_id}",
                ask_id=ask.ask_id, program=ask.program,
            )  # fmt: skip
        elif ask.status == "reminded" and reminded and now >= reminded + _secs(pb.decline_after_seconds):
            effects += _decline(state, pb, ask, now)
    refresh(state, pb)
    if is_champion(state, pb) and not state.champion_notified:
        state.champion_notified = True
        effects.append(
            SendEmail(
                key=f"{state.customer_id}:champion:team",
                template="team_champion",
                to_email=pb.team_email,
                step="team",
                context={
                    "customer": _customer_context(state),
                    "score": state.score,
                    "completed": dict(state.completed),
                },
                summary=f"tell the team {state.customer_id} is a champion",
            )
        )
    choice = next_ask(state, pb, now)
    if choice is not None and choice[1] <= now:
        spec, _ = choice
        ask_id = f"{spec.name}-{len(state.asks) + 1}"
        new = Ask(ask_id=ask_id, program=spec.name, status="scheduled", created_at=iso(now))
        state.asks.append(new)
        template = f"ask_{spec.name}"
        effects += _email(
            state, f"{ask_id}:invite", template, "invite", f"send {spec.name} ask to {state.customer_id}",
            ask_id=ask_id, program=spec.name, link=spec.link,
        )  # fmt: skip
    refresh(state, pb)
    return effects


def next_wake(
    state: JourneyState, pb: Playbook, now: datetime, patched: Patched = _every_fix
) -> tuple[datetime, str] | None:
    """When something next falls due without a new event, and what, for the timer summary."""
    due: list[tuple[datetime, str]] = []
    until = _t(state.at_risk_until)
    if state.at_risk_since is not None and state.positive_since_risk and until is not None:
        due.append((until, "risk cooldown ends"))
    for reward in state.rewards:
        hold = _t(reward.hold_until)
        if reward.status == "pending" and hold is not None:
            due.append((hold, f"hold on reward {reward.reward_id} ends"))
    ask = open_ask(state)
    if ask is not None and not _asks_blocked(state):
        if ask.status == "sent" and ask.sent_at:
            due.append(
                (
                    reminder_due(state, pb, parse_timestamp(ask.sent_at), patched),
                    f"wait for {ask.program} response, {human_duration(pb.reminder_after_seconds)}",
                )
            )
        elif ask.status == "reminded" and ask.reminded_at:
            due.append(
                (
                    parse_timestamp(ask.reminded_at) + _secs(pb.decline_after_seconds),
                    f"wait for {ask.program} response after reminder, {human_duration(pb.decline_after_seconds)}",
                )
            )
    choice = next_ask(state, pb, now)
    if choice is not None:
        due.append((choice[1], f"send {choice[0].name} ask"))
    if not due:
        return None
    return min(due, key=lambda d: d[0])


# ---- outcomes of effects ------------------------------------------------------------


def effect_done(state: JourneyState, pb: Playbook, effect: Effect, now: datetime) -> None:
    # Workflow time, not the activity's clock: the journey's timers are measured against it.
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
    refresh(state, pb)


def effect_failed(state: JourneyState, pb: Playbook, effect: Effect, error: str, now: datetime) -> list[Effect]:
    """A permanent failure: shown in the state; an ask that could not be sent is cancelled."""
    state.last_error = f"{iso(now)} {type(effect).__name__}: {error}"[:500]
    effects: list[Effect] = []
    if isinstance(effect, SendEmail) and effect.ask_id and effect.step in ("invite", "reminder"):
        ask = next((a for a in state.asks if a.ask_id == effect.ask_id), None)
        if ask is not None and ask.status in OPEN_ASK_STATUSES:
            ask.status, ask.closed_at, ask.error = "cancelled", iso(now), f"send failed: {error}"[:300]
            effects.append(RecordAsk(replace(ask)))
    refresh(state, pb)
    return effects
