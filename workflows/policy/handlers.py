"""Applying one customer event: a handler per event type, looked up in one table."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from workflows import patches
from workflows.events import iso, parse_timestamp, when
from workflows.model import CustomerEvent, JourneyState
from workflows.policy.asks import close_open_ask, enter_risk, opt_out
from workflows.policy.budget import event_key, keep_within_budget, seen
from workflows.policy.completion import accept, complete_activity
from workflows.policy.context import Policy
from workflows.policy.effects import Effect, RecordCustomer
from workflows.policy.referrals import add_referral, convert_referral
from workflows.policy.scoring import note, positive_moment, refresh

# (state, policy at the time of applying, the event, when it happened (never later than now)) -> effects
Handler = Callable[[JourneyState, Policy, CustomerEvent, datetime], list[Effect]]


def apply_event(state: JourneyState, ctx: Policy, ev: CustomerEvent) -> list[Effect]:
    """Apply one validated event. Duplicates (same event_id) change nothing."""
    if seen(state, ev.event_id):
        return []
    state.seen_event_ids.append(event_key(ev.event_id))
    del state.seen_event_ids[: -ctx.playbook.max_event_ids_kept]
    state.events_applied += 1
    # Never trust a timestamp from the future: it would pin "latest" values forever.
    at = min(parse_timestamp(ev.occurred_at), ctx.now)
    effects = HANDLERS[ev.type](state, ctx, ev, at)
    keep_within_budget(state, ctx)
    refresh(state, ctx.playbook)
    return effects


def _newer(current: str | None, at: datetime) -> bool:
    last = when(current)
    return last is None or at >= last


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _profile(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    data = ev.data
    if not _newer(state.profile.updated_at, at):
        return []
    p = state.profile
    if data["email"].lower() != p.email:
        state.email_undeliverable = None  # a new address gets a new chance
    p.email, p.name, p.company = data["email"].lower(), data["name"], data["company"]
    for key in ("timezone", "locale", "segment", "plan"):
        if data.get(key) is not None:
            setattr(p, key, data[key])
    p.updated_at = iso(at)
    pb = ctx.playbook
    points = {k: pb.fit.get(k, {}).get(str(getattr(p, k) or ""), 0) for k in ("segment", "plan")}
    # An unknown segment or plan is neutral, not zero (it used to keep such customers below every tier).
    neutral = {k: pb.fit_for_unknown(k) for k in points if getattr(p, k) is None}
    if any(neutral.values()) and ctx.patched(patches.PROGRAM_QUALIFICATION):
        points.update(neutral)
    state.fit = min(30, sum(points.values()))
    return [RecordCustomer()]


def _nps(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    pb, score = ctx.playbook, ev.data["score"]
    newest = _newer(state.last_nps_at, at)
    if newest:
        state.last_nps, state.last_nps_at = score, iso(at)
        state.nps_history.append(score)
        del state.nps_history[:-12]
    if score >= pb.promoter_min:
        note(state, ctx, at, ev.type, "nps_promoter", f"promoter NPS {score}")
        positive_moment(state, at)
    elif score <= pb.detractor_max:
        note(state, ctx, at, ev.type, "nps_detractor", f"detractor NPS {score}")
        if newest:
            return enter_risk(state, ctx, f"detractor NPS {score}")
    else:
        note(state, ctx, at, ev.type, "nps_passive", f"passive NPS {score}")
    return []


def _csat(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    score = ev.data["score"]
    if score >= 4:
        note(state, ctx, at, ev.type, "csat_high", f"CSAT {score}")
        positive_moment(state, at)
    elif score <= 2:
        note(state, ctx, at, ev.type, "csat_low", f"CSAT {score}")
    else:
        note(state, ctx, at, ev.type, None, f"neutral CSAT {score}")
    return []


def _milestone(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    note(state, ctx, at, ev.type, "usage_milestone", f"milestone {ev.data['milestone']}")
    positive_moment(state, at)
    return []


def _support_resolved(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    satisfied, ticket = ev.data.get("satisfied"), ev.data["ticket_id"]
    if satisfied is True:
        note(state, ctx, at, ev.type, "support_resolved_satisfied", f"ticket {ticket} resolved, satisfied")
        positive_moment(state, at)
    elif satisfied is False:
        note(state, ctx, at, ev.type, "support_resolved_unsatisfied", f"ticket {ticket} resolved, unsatisfied")
    else:
        note(state, ctx, at, ev.type, None, f"ticket {ticket} resolved")
    return []


def _escalation(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    ticket = ev.data["ticket_id"]
    note(state, ctx, at, ev.type, "support_escalation", f"ticket {ticket} escalated")
    return enter_risk(state, ctx, f"support escalation {ticket}")


def _renewal(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    note(state, ctx, at, ev.type, "renewal", "renewed")
    positive_moment(state, at)
    return []


def _social(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    sentiment = ev.data["sentiment"]
    if sentiment == "positive":
        note(state, ctx, at, ev.type, "social_positive", "positive social mention")
        positive_moment(state, at)
    elif sentiment == "negative":
        note(state, ctx, at, ev.type, "social_negative", "negative social mention")
    else:
        note(state, ctx, at, ev.type, None, "neutral social mention")
    return []


def _churn_risk(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    level = ev.data["level"]
    state.churn_risk = level
    note(state, ctx, at, ev.type, f"churn_risk_{level}", f"churn risk {level}")
    if level == "high":
        return enter_risk(state, ctx, "high churn risk")
    if level == "low":
        positive_moment(state, at)
    return []


def _completed(program: str, key: Callable[[CustomerEvent], str]) -> Handler:
    """An advocacy activity done; `key` says which completions are the same one (a review per site)."""

    def handle(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
        return complete_activity(state, ctx, program, key(ev))

    return handle


def _advisory_board(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    if ev.data["accepted"]:
        return accept(state, ctx, "advisory_board", "seat")
    return close_open_ask(state, ctx, "advisory_board")


def _referral_submitted(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    data = ev.data
    _, _, effects = add_referral(
        state, ctx, referee_email=data["referee_email"], referee_name=data.get("referee_name"),
        referee_company=data.get("referee_company"),
    )  # fmt: skip
    return effects


def _referral_converted(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    return convert_referral(state, ctx, ev.type, ev.data)


def _unsubscribed(state: JourneyState, ctx: Policy, ev: CustomerEvent, at: datetime) -> list[Effect]:
    return opt_out(state, ctx.now, ev.data.get("reason") or "unsubscribed")


def _by_event_id(ev: CustomerEvent) -> str:
    return ev.event_id


HANDLERS: dict[str, Handler] = {
    "customer_profile": _profile,
    "nps_response": _nps,
    "csat_response": _csat,
    "usage_milestone": _milestone,
    "support_resolved": _support_resolved,
    "support_escalation": _escalation,
    "renewal": _renewal,
    "social_mention": _social,
    "churn_risk": _churn_risk,
    "review_submitted": _completed("review", lambda ev: f"site-{_slug(ev.data['site'])}"),
    "reference_completed": _completed("reference", _by_event_id),
    "case_study_published": _completed("case_study", _by_event_id),
    "speaking_completed": _completed("speaking", _by_event_id),
    "advisory_board_response": _advisory_board,
    "referral_submitted": _referral_submitted,
    "referral_converted": _referral_converted,
    "unsubscribed": _unsubscribed,
}
