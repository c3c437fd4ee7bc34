"""Referrals: one self-referral rule for the API and the journey, submissions, and deals that convert them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from workflows import patches
from workflows.addresses import AddressError, address_key, key_domain, same_organisation
from workflows.events import iso, parse_timestamp
from workflows.model import JourneyState, Referral
from workflows.policy.completion import complete_activity
from workflows.policy.context import Patched, Policy
from workflows.policy.effects import Effect, RecordReferral
from workflows.policy.rewards import (
    cap_remaining,
    deal_value,
    grant,
    has_reward,
    referral_amount,
    referral_reward_for,
    void_pending,
)
from workflows.policy.scoring import note, positive_moment

# Shared mail domains say nothing about who works where: a referee there is not a coworker.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com", "icloud.com", "me.com",
    "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de", "yandex.ru", "mail.com",
})  # fmt: skip
# What the journey knew before the list was shared: same-domain referrals at the others were refused.
_JOURNEY_FREE_MAIL_BEFORE = frozenset(
    {"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "protonmail.com"}
)


def domain(address: str) -> str:
    return address.strip().lower().rpartition("@")[2]


def self_referral(own_email: str | None, referee_email: str, patched: Patched) -> str | None:
    """Why a referral by `own_email` of `referee_email` is a self-referral, or None."""
    if patched(patches.REFERRAL_ADDRESS_RULES):
        return _self_referral_by_key(own_email, referee_email)
    own, referee = (own_email or "").strip().lower(), referee_email.strip().lower()
    if not own:
        return None
    if referee == own:
        return "self-referral: the referee email is the advocate's own"
    own_domain = domain(own)
    shared = own_domain in FREE_MAIL
    if shared and own_domain not in _JOURNEY_FREE_MAIL_BEFORE and not patched(patches.SHARED_FREE_MAIL_LIST):
        shared = False
    if own_domain and not shared and domain(referee) == own_domain:
        return f"self-referral: the referee works at the advocate's company (own company domain {own_domain})"
    return None


def _key(address: str | None) -> str | None:
    try:
        return address_key(address) if address else None
    except AddressError:
        return None


def _self_referral_by_key(own_email: str | None, referee_email: str) -> str | None:
    """Addresses compared as mailboxes (workflows.addresses): Gmail dots, +tags, googlemail, a trailing dot,
    look-alike letters; a referee at the company's domain or any of its subdomains works there."""
    own, referee = _key(own_email), _key(referee_email)
    if own is None or referee is None:
        return None
    if referee == own:
        return "self-referral: the referee email is the advocate's own"
    own_domain = key_domain(own)
    if own_domain not in FREE_MAIL and same_organisation(key_domain(referee), own_domain):
        return f"self-referral: the referee works at the advocate's company (own company domain {own_domain})"
    return None


def referral_id_for(customer_id: str, referee_email: str) -> str:
    digest = hashlib.sha256(f"{customer_id}|{referee_email.lower()}".encode()).hexdigest()
    return f"ref-{digest[:12]}"


def referral_refusal(state: JourneyState, referee_email: str, ctx: Policy) -> str | None:
    """Why this journey must refuse a referral, or None. The update validator and the event path ask it."""
    email = referee_email.strip().lower()
    refusal = self_referral(state.profile.email, email, ctx.patched)
    if refusal:
        return refusal
    if any(r.referee_email == email for r in state.referrals):
        return "duplicate: this referee was already referred by this advocate"
    if ctx.patched(patches.REFERRAL_ADDRESS_RULES):
        # Spellings of one mailbox are one referee, and the daily cap holds however many arrive at once.
        key = _key(email)
        if key is not None and any(_key(r.referee_email) == key for r in state.referrals):
            return "duplicate: this referee was already referred by this advocate"
        today = ctx.now.date()
        per_day = ctx.playbook.referral_max_per_day
        if sum(parse_timestamp(r.submitted_at).date() == today for r in state.referrals) >= per_day:
            return f"more than {per_day} referrals per advocate per day"
    return None


def add_referral(
    state: JourneyState,
    ctx: Policy,
    *,
    referee_email: str,
    referee_name: str | None,
    referee_company: str | None,
) -> tuple[Referral | None, str | None, list[Effect]]:
    """Submit a referral: (the referral, None, effects), the earlier one if already made, or (None, why, [])."""
    email = referee_email.strip().lower()
    rid = referral_id_for(state.customer_id, email)
    existing = next((r for r in state.referrals if r.referral_id == rid), None)
    if existing is not None:
        return existing, None, []
    refusal = referral_refusal(state, email, ctx)
    if refusal:
        note(state, ctx, ctx.now, "referral_submitted", None, f"referral refused: {refusal}")
        return None, refusal, []
    referral = Referral(
        referral_id=rid,
        referee_email=email,
        status="submitted",
        submitted_at=iso(ctx.now),
        referee_name=referee_name,
        referee_company=referee_company,
        updated_at=iso(ctx.now),
    )
    state.referrals.append(referral)
    effects: list[Effect] = [RecordReferral(referral=replace(referral))]
    effects += complete_activity(state, ctx, "referral", rid)
    return referral, None, effects


def _find_referral(state: JourneyState, ctx: Policy, data: dict[str, Any]) -> Referral | None:
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
                submitted_at=iso(ctx.now),
            )
            state.referrals.append(referral)
    return referral


def convert_referral(state: JourneyState, ctx: Policy, event_type: str, data: dict[str, Any]) -> list[Effect]:
    """A CRM deal moved: opportunity, won (reward the advocate, and the referee if the playbook says) or lost."""
    now = ctx.now
    referral = _find_referral(state, ctx, data)
    if referral is None:
        note(state, ctx, now, event_type, None, f"unknown referral {data.get('referral_id')!r}: ignored")
        return []
    effects: list[Effect] = []
    stage = data["stage"]
    was = referral.status
    referral.updated_at = iso(now)
    if data.get("amount") is not None:
        referral.amount = float(data["amount"])
    if data.get("currency"):
        referral.currency = data["currency"]
    if stage == "opportunity":
        if was in ("submitted", "opportunity"):
            referral.status = "opportunity"
    elif stage == "won":
        referral.status = "won"
        positive_moment(state, now)
        effects += _referral_rewards(state, ctx, referral, event_type)
    elif stage == "lost":
        referral.status = "lost"
        effects += void_pending(
            state, referral.referral_id, "refunded within the hold period" if was == "won" else "deal lost"
        )
    effects.insert(0, RecordReferral(referral=replace(referral)))
    return effects


def _referral_rewards(state: JourneyState, ctx: Policy, referral: Referral, event_type: str) -> list[Effect]:
    spec = ctx.playbook.referral_reward
    effects: list[Effect] = []
    reward_id = f"referral-{referral.referral_id}"
    if has_reward(state, reward_id):
        voided = next((r for r in state.rewards if r.reward_id == reward_id and r.status == "void"), None)
        if voided is not None:  # won, refunded, won again: say so rather than drop it silently
            note(state, ctx, ctx.now, event_type, None,
                 f"won again after its reward was voided ({voided.void_reason}): no new reward; "
                 "a new deal needs a new referral")  # fmt: skip
        return effects
    earned: float | None = referral_amount(ctx.playbook, referral.amount)
    if spec.mode != "flat" and ctx.patched(patches.REFERRAL_DEAL_CURRENCY):
        # 3 % of a yen amount used to be paid as dollars: convert with the playbook's rate, or hold.
        value = deal_value(ctx.playbook, referral.amount, referral.currency)
        earned = None if value is None else referral_reward_for(ctx.playbook, value)
    amount = 0.0 if earned is None else min(earned, cap_remaining(state, ctx))
    if earned is None:
        note(state, ctx, ctx.now, event_type, None,
             f"referral reward held: no rate for {referral.currency} into {spec.currency} in the playbook's "
             "currency_rates (a later 'won' after the rate is added rewards it)")  # fmt: skip
    elif amount > 0:
        effects += grant(
            state, ctx, reward_id=reward_id, program="referral", amount=amount, currency=spec.currency,
            kind=spec.kind, hold_seconds=spec.hold_seconds, referral_id=referral.referral_id,
        )  # fmt: skip
    else:
        note(state, ctx, ctx.now, event_type, None, "annual reward cap reached: no referral reward")
    incentive_id = f"referee-{referral.referral_id}"
    # A second "won" after the annual cap left no advocate reward used to add the incentive again.
    given = has_reward(state, incentive_id) and ctx.patched(patches.REFEREE_INCENTIVE_ONCE)
    if spec.referee_amount > 0 and not given:
        effects += grant(
            state, ctx, reward_id=incentive_id, program="referral", amount=spec.referee_amount,
            currency=spec.referee_currency, kind=spec.referee_kind, hold_seconds=spec.hold_seconds,
            beneficiary="referee", referral_id=referral.referral_id,
        )  # fmt: skip
    return effects


def forget_referee(state: JourneyState, emails: list[str], placeholder: str) -> int:
    """Erase a referee's PII from this advocate's referrals (the referral, its status and amounts stay)."""
    wanted = {e.strip().lower() for e in emails}
    forgotten = 0
    for referral in state.referrals:
        if referral.referee_email.strip().lower() in wanted:
            referral.referee_email, referral.referee_name, referral.referee_company = placeholder, None, None
            forgotten += 1
    return forgotten
