"""A simulated customer cohort: realistic event streams, and customers who answer asks.

Time is counted in days of the playbook; the demo maps one day to a second of
wall clock (see playbooks/demo.yaml). Personas differ in who they are, what
they tell us, and how they answer asks; a seeded RNG keeps runs repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Published figures the cohort is drawn from, so the demo's KPIs (and forecasts built on them) look like a real
# program rather than a flattering one. Each is the share of asked customers who act, unless it says otherwise.
#
# Referral funnel: Implisit's October 2014 study of the CRM (Salesforce) data of nearly 500 US B2B companies,
# reported by eMarketer, "Referrals Fuel Highest B2B Conversion Rates" (10 Feb 2015): of leads from customer and
# employee referrals, nearly 25 % became opportunities and 3.63 % became deals; 14.7 % of those opportunities won.
REFERRAL_LEAD_TO_OPPORTUNITY = 0.248
DEAL_CURRENCY = "USD"
REFERRAL_OPPORTUNITY_TO_WON = 0.147  # 0.248 * 0.147 = 3.6 % of leads won
# Of satisfied customers, 83 % say they are willing to refer and 29 % do (Texas Tech University study, as widely
# cited); The Daniel Group's 500,000 customer interviews found 28-39 % had referred in the past six months.
REFERRAL_ASK_ACTED = 0.29
# "Only one in 10 happy customers leaves a good review" (Inc., "The Secret Ratio That Proves Why Customer Reviews
# Are So Important"): an ask that names the site and links to it does a little better.
REVIEW_ASK_ACTED = 0.12
# Reference calls: a reference manager emailing 10 customers gets 2 answers and 1 call (Segment8, "Reference
# Customer Programs"); case studies and speaking slots ask more of a customer and are rarer still (our assumption).
REFERENCE_ASK_ACTED = 0.10
CASE_STUDY_ASK_ACTED = 0.06
SPEAKING_ASK_ACTED = 0.05
# Advisory boards: a new board takes two invitations per acceptance, "sometimes higher", and about one once it has
# run for a year (Ignite Advisory Group, "CAB Membership and Quorum", from 200+ board meetings). The rest decline.
ADVISORY_BOARD_ACCEPTED = 0.45
ASK_ACTED = {
    "review": REVIEW_ASK_ACTED,
    "referral": REFERRAL_ASK_ACTED,
    "reference": REFERENCE_ASK_ACTED,
    "case_study": CASE_STUDY_ASK_ACTED,
    "speaking": SPEAKING_ASK_ACTED,
    "advisory_board": ADVISORY_BOARD_ACCEPTED,
}
# persona -> share of the cohort. Champions (customers who have already advocated and whose signals keep the
# journey climbing the ladder) are a small core; most happy customers are promoters or silent promoters (NPS 9-10
# but few other signals). Their answers to asks all follow ASK_ACTED: a persona changes what they tell us, not how
# likely they are to act once asked.
PERSONAS = {
    "champion": 0.06,
    "promoter": 0.30,
    "passive": 0.22,
    "silent_promoter": 0.14,
    "at_risk": 0.13,
    "churner": 0.08,
    "unsubscriber": 0.07,
}
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus", "Margaret", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Hamilton"]
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne"]
_ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", "Europe/London"]
_ACTIONS: dict[str, tuple[str, Callable[[random.Random], dict[str, Any]]]] = {
    "review": (
        "review_submitted",
        lambda rng: {"site": rng.choice(["g2", "capterra", "trustradius"]), "rating": rng.choice([4, 5, 5])},
    ),
    "reference": ("reference_completed", lambda rng: {"notes": "happy to help"}),
    "case_study": ("case_study_published", lambda rng: {"notes": "published"}),
    "speaking": ("speaking_completed", lambda rng: {"notes": "webinar"}),
    "advisory_board": ("advisory_board_response", lambda rng: {"accepted": True}),
}


@dataclass
class Customer:
    customer_id: str
    persona: str
    timeline: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)


def _profile(rng: random.Random, cid: str, persona: str) -> dict[str, Any]:
    first, last, company = rng.choice(_FIRST), rng.choice(_LAST), rng.choice(_COMPANIES)
    segment = "enterprise" if persona in ("champion", "at_risk") else rng.choice(["mid_market", "smb", "enterprise"])
    return {
        "email": f"{first.lower()}.{last.lower()}.{cid}@{company.lower()}.example",
        "name": f"{first} {last}",
        "company": f"{company} {rng.choice(['Inc', 'GmbH', 'Ltd', 'KK'])}",
        "timezone": rng.choice(_ZONES),
        "segment": segment,
        "plan": rng.choice(["premium", "business", "starter"]),
    }


def build_cohort(size: int, prefix: str, seed: int = 7) -> list[Customer]:
    rng = random.Random(seed)
    names = list(PERSONAS)
    weights = list(PERSONAS.values())
    cohort = []
    for i in range(size):
        persona = names[i % len(names)] if i < len(names) else rng.choices(names, weights)[0]
        cid = f"{prefix}-{i:03d}"
        c = Customer(cid, persona)
        t = c.timeline
        t.append((0.0, "customer_profile", _profile(rng, cid, persona)))
        jitter = rng.uniform(0, 3)
        if persona in ("champion", "promoter", "silent_promoter", "unsubscriber", "at_risk", "churner"):
            t.append((0.5 + jitter, "nps_response", {"score": rng.choice([9, 10])}))
        else:
            t.append((0.5 + jitter, "nps_response", {"score": rng.choice([7, 8])}))
        for day in range(10, 100, rng.choice([12, 15, 20])):
            t.append((day + jitter, "usage_milestone", {"milestone": f"milestone-{day}", "value": day * 10}))
        for n, day in enumerate((5, 30, 60, 85)):
            t.append((day + jitter, "csat_response", {"score": 5 if persona != "passive" else rng.choice([3, 4])}))
            t.append((day + 1 + jitter, "support_resolved", {"ticket_id": f"T-{cid}-{n}", "satisfied": True}))
        if persona in ("champion", "promoter"):
            t.append((35 + jitter, "renewal", {"contract_value": rng.randint(10, 200) * 1000, "term_months": 12}))
            t.append((40 + jitter, "nps_response", {"score": 10}))
            t.append((45 + jitter, "social_mention", {"url": f"https://social.example/{cid}", "sentiment": "positive"}))
        if persona == "champion":
            t.append((62 + jitter, "nps_response", {"score": 10}))
        if persona == "at_risk":
            t.append((10 + jitter, "support_escalation", {"ticket_id": f"E-{cid}", "severity": "high"}))
            t.append((12 + jitter, "nps_response", {"score": rng.choice([3, 4, 5])}))
            t.append((72 + jitter, "nps_response", {"score": 9}))
        if persona == "churner":
            t.append((20 + jitter, "churn_risk", {"level": "high"}))
            t.append((30 + jitter, "nps_response", {"score": 2}))
        t.sort(key=lambda item: item[0])
        cohort.append(c)
    return cohort


def responses(
    rng: random.Random, customer: Customer, program: str, day: float
) -> list[tuple[float, str, dict[str, Any]]]:
    """What this customer does about an open ask: events to send, at which day (none: the ask goes unanswered)."""
    if customer.persona == "unsubscriber":
        return [(day + 1, "unsubscribed", {"reason": "not interested"})]
    when = day + rng.uniform(1, 4)
    if program == "advisory_board":  # an invitation gets an answer, yes or no
        return [(when, "advisory_board_response", {"accepted": rng.random() < ADVISORY_BOARD_ACCEPTED})]
    if rng.random() >= ASK_ACTED[program]:
        return []
    if program != "referral":
        kind, data = _ACTIONS[program]
        return [(when, kind, data(rng))]
    domain = f"prospect{rng.randint(1000, 9999)}.example"
    email = f"buyer@{domain}"
    lead = {"referee_email": email, "referee_name": "Pat Prospect", "referee_company": domain}
    events: list[tuple[float, str, dict[str, Any]]] = [(when, "referral_submitted", lead)]
    if rng.random() < REFERRAL_LEAD_TO_OPPORTUNITY:
        amount = rng.randint(5, 60) * 1000
        opportunity = {"referee_email": email, "stage": "opportunity", "amount": amount, "currency": DEAL_CURRENCY}
        events.append((when + 4, "referral_converted", opportunity))
        outcome = "won" if rng.random() < REFERRAL_OPPORTUNITY_TO_WON else "lost"
        events.append((when + 10, "referral_converted", {**opportunity, "stage": outcome}))
    return events
