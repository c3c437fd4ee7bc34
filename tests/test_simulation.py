"""The demo's simulated cohort acts at rates drawn from published B2B figures, not flattering ones
(cli/simulation.py names each figure's source). A seeded run of the cohort model, no Temporal needed."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cli.simulation import PERSONAS, build_cohort, responses
from workflows.model import PROGRAMS

CUSTOMERS = 20_000


@pytest.fixture(scope="module")
def outcomes() -> Counter[str]:
    """Every customer of a seeded cohort asked once for each program, as the demo's customers answer."""
    rng = random.Random(11)
    tally: Counter[str] = Counter()
    for customer in build_cohort(CUSTOMERS, "sim"):
        tally[f"persona:{customer.persona}"] += 1
        if customer.persona == "unsubscriber":  # their answer to any ask is an opt-out
            assert [kind for _, kind, _ in responses(rng, customer, "review", 0.0)] == ["unsubscribed"]
            continue
        for program in PROGRAMS:
            tally[f"asked:{program}"] += 1
            for _, kind, data in responses(rng, customer, program, 0.0):
                if kind == "advisory_board_response":
                    tally["advisory_board:accepted" if data["accepted"] else "advisory_board:declined"] += 1
                elif kind == "referral_converted":
                    tally[f"referral:{data['stage']}"] += 1
                else:
                    tally[kind] += 1
    return tally


# (measure, published range): the sources are next to the constants in cli/simulation.py.
PUBLISHED = [
    # Implisit 2014, ~500 companies' CRM data: nearly 25 % of referral leads become opportunities, 14.7 % of those
    # win, 3.63 % of leads become deals.
    ("lead_to_opportunity", 0.20, 0.30),
    ("opportunity_to_won", 0.10, 0.20),
    ("lead_to_won", 0.025, 0.05),
    # 29 % of satisfied customers refer (Texas Tech), 28-39 % had referred in six months (The Daniel Group).
    ("referral_asks_acted", 0.25, 0.40),
    # About one happy customer in ten leaves a review; one reference call per ten customers asked.
    ("review_asks_acted", 0.05, 0.15),
    ("reference_asks_acted", 0.05, 0.15),
    # A new advisory board takes two invitations per acceptance, sometimes more.
    ("advisory_board_accepted", 0.33, 0.55),
]


def _rates(t: Counter[str]) -> dict[str, float]:
    leads = t["referral_submitted"]
    opportunities = t["referral:opportunity"]
    return {
        "lead_to_opportunity": opportunities / leads,
        "opportunity_to_won": t["referral:won"] / opportunities,
        "lead_to_won": t["referral:won"] / leads,
        "referral_asks_acted": leads / t["asked:referral"],
        "review_asks_acted": t["review_submitted"] / t["asked:review"],
        "reference_asks_acted": t["reference_completed"] / t["asked:reference"],
        "advisory_board_accepted": t["advisory_board:accepted"] / t["asked:advisory_board"],
    }


@pytest.mark.parametrize(("measure", "low", "high"), PUBLISHED)
def test_the_cohort_acts_at_published_rates(outcomes: Counter[str], measure: str, low: float, high: float) -> None:
    rate = _rates(outcomes)[measure]
    assert low <= rate <= high, f"{measure}: {rate:.3f} is outside the published {low:.3f}-{high:.3f}"


def test_every_opportunity_ends_won_or_lost_and_every_invitation_is_answered(outcomes: Counter[str]) -> None:
    assert outcomes["referral:won"] + outcomes["referral:lost"] == outcomes["referral:opportunity"]
    answered = outcomes["advisory_board:accepted"] + outcomes["advisory_board:declined"]
    assert answered == outcomes["asked:advisory_board"]
    # Case studies and speaking slots ask more of a customer than a reference call: rarer still.
    reference = outcomes["reference_completed"] / outcomes["asked:reference"]
    for program, kind in (("case_study", "case_study_published"), ("speaking", "speaking_completed")):
        assert 0 < outcomes[kind] / outcomes[f"asked:{program}"] <= reference


def test_champions_are_a_small_core_of_the_cohort(outcomes: Counter[str]) -> None:
    assert sum(PERSONAS.values()) == pytest.approx(1.0)
    assert outcomes["persona:champion"] / CUSTOMERS <= 0.10
