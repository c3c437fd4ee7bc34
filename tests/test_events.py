"""Event validation: bad input is refused with the field at fault; good input is normalised."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.events import EventError, parse_event


def ev(type: str = "nps_response", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "customer_id": "c-1",
        "type": type,
        "occurred_at": "2026-11-25T10:00:00Z",
        "data": {"score": 9},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (ev(type="nps_surveyed"), "type", "unknown event type"),
        (ev(data={"score": 11}), "data.score", "between 0 and 10"),
        (ev(data={"score": "9"}), "data.score", "integer"),
        (ev(data={"score": True}), "data.score", "integer"),
        (ev(data={}), "data.score", "required"),
        (ev(customer_id=None), "customer_id", "required"),
        (ev(customer_id="has space"), "customer_id", "letters"),
        (ev(event_id=""), "event_id", "required"),
        (ev(occurred_at="yesterday"), "occurred_at", "ISO 8601"),
        (ev(occurred_at=1732530000), "occurred_at", "ISO 8601"),
        (ev(data=[1]), "data", "JSON object"),
        ({**ev(), "extra": 1}, "extra", "unknown top-level"),
        (ev("csat_response", data={"score": 0}), "data.score", "between 1 and 5"),
        (ev("social_mention", data={"url": "u", "sentiment": "angry"}), "data.sentiment", "one of"),
        (ev("churn_risk", data={"level": "extreme"}), "data.level", "one of"),
        (ev("customer_profile", data={"email": "nope", "name": "A", "company": "B"}), "data.email", "email"),
        (
            ev("customer_profile", data={"email": "a@b.co", "name": "A", "company": "B", "timezone": "Mars/Base"}),
            "data.timezone",
            "time zone",
        ),
        (ev("referral_converted", data={"stage": "won"}), "data.referral_id", "referee_email"),
        (
            ev("referral_converted", data={"referral_id": "r", "stage": "won", "currency": "usd"}),
            "data.currency",
            "ISO",
        ),
        (ev("advisory_board_response", data={"accepted": "yes"}), "data.accepted", "boolean"),
        (ev("support_resolved", data={"ticket_id": "t", "satisfied": 1}), "data.satisfied", "boolean"),
        ("not an object", "event", "JSON object"),
    ],
)
def test_bad_events_name_the_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(EventError) as err:
        parse_event(raw)
    assert err.value.field == field
    assert words in str(err.value)


def test_good_event_is_normalised_to_utc() -> None:
    event = parse_event(ev(occurred_at="2026-11-25T12:00:00+02:00"))
    assert event.occurred_at == "2026-11-25T10:00:00Z"
    assert event.data == {"score": 9}


def test_every_contract_type_has_a_valid_example() -> None:
    examples = {
        "customer_profile": {"email": "a@b.co", "name": "A", "company": "B", "timezone": "Europe/Paris"},
        "nps_response": {"score": 0, "comment": "meh"},
        "csat_response": {"score": 5},
        "usage_milestone": {"milestone": "first project", "value": 3},
        "support_resolved": {"ticket_id": 17, "satisfied": True},
        "support_escalation": {"ticket_id": "T-1", "severity": "high"},
        "renewal": {},
        "social_mention": {"url": "https://x", "sentiment": "neutral"},
        "churn_risk": {"level": "medium"},
        "review_submitted": {"site": "g2", "rating": 4.5},
        "reference_completed": {},
        "case_study_published": {"notes": "n"},
        "speaking_completed": {},
        "referral_submitted": {"referee_email": "r@x.co"},
        "referral_converted": {"referee_email": "r@x.co", "stage": "lost"},
        "advisory_board_response": {"accepted": False},
        "unsubscribed": {},
    }
    for type, data in examples.items():
        assert parse_event(ev(type, data=data)).type == type


PROFILE = {"email": "a@b.co", "name": "A", "company": "B"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # Each longer than the database column that keeps it (PostgreSQL refuses the row).
        (ev("customer_profile", data={**PROFILE, "name": "n" * 201}), "data.name"),
        (ev("customer_profile", data={**PROFILE, "company": "c" * 201}), "data.company"),
        (ev("customer_profile", data={**PROFILE, "locale": "de-" + "x" * 14}), "data.locale"),
        (ev("customer_profile", data={**PROFILE, "plan": "p" * 65}), "data.plan"),
        (ev("customer_profile", data={**PROFILE, "segment": "s" * 65}), "data.segment"),
        (ev("customer_profile", data={**PROFILE, "email": "a" * 310 + "@example.com"}), "data.email"),
        (ev("referral_submitted", data={"referee_email": "r@x.co", "referee_name": "n" * 201}), "data.referee_name"),
        (
            ev("referral_submitted", data={"referee_email": "r@x.co", "referee_company": "c" * 201}),
            "data.referee_company",
        ),
        # Kept in the journey's score log: bounded so the state stays within its budget.
        (ev("usage_milestone", data={"milestone": "m" * 201}), "data.milestone"),
        (ev("review_submitted", data={"site": "s" * 65, "rating": 5}), "data.site"),
        (ev("nps_response", data={"score": 9, "comment": "c" * 2001}), "data.comment"),
        (ev("social_mention", data={"url": "https://x/" + "u" * 2048, "sentiment": "positive"}), "data.url"),
        # Fields outside the schema are kept with the event: bounded too, one by one and in total.
        (ev(data={"score": 9, "note": "x" * 1001}), "data.note"),
        (ev(data={"score": 9, **{f"k{i}": "x" * 900 for i in range(20)}}), "data"),
    ],
)
def test_text_longer_than_its_bound_is_refused_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(EventError) as err:
        parse_event(raw)
    assert err.value.field == field
    assert "at most" in err.value.message
    assert err.value.over_limit


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # `$` matches before a trailing newline: every pattern must match the whole value.
        (ev("referral_converted", data={"referral_id": "r", "stage": "won", "currency": "USD\n"}), "data.currency"),
        (ev(customer_id="c-1\n"), "customer_id"),
        (ev("customer_profile", data={**PROFILE, "email": "a@b.co\n"}), "data.email"),
        (ev("referral_submitted", data={"referee_email": "r@x.co\n"}), "data.referee_email"),
    ],
)
def test_a_trailing_newline_does_not_pass_a_pattern(raw: Any, field: str) -> None:
    with pytest.raises(EventError) as err:
        parse_event(raw)
    assert err.value.field == field


def test_every_bounded_field_fits_its_database_column() -> None:
    from storage.models import Customer, ReferralRow
    from workflows.events import TEXT_LIMITS

    columns = {
        "email": Customer.email, "name": Customer.name, "company": Customer.company,
        "timezone": Customer.timezone, "locale": Customer.locale, "segment": Customer.segment, "plan": Customer.plan,
        "referee_email": ReferralRow.referee_email, "referee_name": ReferralRow.referee_name,
        "referee_company": ReferralRow.referee_company, "currency": ReferralRow.currency,
        "referral_id": ReferralRow.referral_id,
    }  # fmt: skip
    for field, column in columns.items():
        assert TEXT_LIMITS[field] <= column.type.length, field


def test_text_at_its_bound_is_accepted() -> None:
    data = {**PROFILE, "name": "n" * 200, "locale": "de-AT", "plan": "p" * 64}
    assert parse_event(ev("customer_profile", data=data)).data["name"] == "n" * 200
