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

# persona -> share of the cohort
PERSONAS = {
    "champion": 0.30,
    "promoter": 0.22,
    "passive": 0.14,
    "silent_promoter": 0.10,
    "at_risk": 0.12,
    "churner": 0.06,
    "unsubscriber": 0.06,
}
# Which asks each persona answers, after how many days.
ANSWERS = {
    "champion": {"review", "referral", "reference", "case_study", "speaking", "advisory_board"},
    "promoter": {"review", "referral"},
    "at_risk": {"review", "referral"},
}
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus", "Margaret", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Hamilton"]
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne"]
_ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", "Europe/London"]
_ACTIONS: dict[str, tuple[str, Callable[[random.Random], dict[str, Any]]]] = {
    "review": ("review_submitted", lambda rng: {"site": rng.choice(["g2", "capterra", "trustradius"]), "rating": 5}),
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
    """What this customer does about an open ask: events to send, at which day."""
    if customer.persona == "unsubscriber":
        return [(day + 1, "unsubscribed", {"reason": "not interested"})]
    if program not in ANSWERS.get(customer.persona, set()):
        return []
    when = day + rng.uniform(1, 4)
    if program == "referral":
        domain = f"prospect{rng.randint(1000, 9999)}.example"
        email = f"buyer@{domain}"
        events: list[tuple[float, str, dict[str, Any]]] = [
            (
                when,
                "referral_submitted",
                {"referee_email": email, "referee_name": "Pat Prospect", "referee_company": domain},
            )
        ]
        events.append(
            (when + 4, "referral_converted", {"referee_email": email, "stage": "opportunity", "amount": 12000})
        )
        outcome = "won" if rng.random() < 0.7 else "lost"
        events.append(
            (
                when + 10,
                "referral_converted",
                {"referee_email": email, "stage": outcome, "amount": rng.randint(5, 60) * 1000, "currency": "USD"},
            )
        )
        return events
    kind, data = _ACTIONS[program]
    return [(when, kind, data(rng))]
