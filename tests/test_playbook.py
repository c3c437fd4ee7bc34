"""Playbooks are validated at load, with the setting at fault named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.playbook import read_playbook
from plumbing.config import DEFAULT_PLAYBOOK, DEMO_PLAYBOOK
from workflows.playbook import Playbook, PlaybookError, parse_duration


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    return data


def test_shipped_playbooks_load() -> None:
    default, demo = read_playbook(DEFAULT_PLAYBOOK), read_playbook(DEMO_PLAYBOOK)
    assert default.ask_min_gap_seconds == 21 * 86400 and demo.ask_min_gap_seconds == 21
    assert default.programs[0].name == "review"
    assert default.version.startswith("2026.11-default+")
    assert default.currency_rates == {}  # a deal in another currency needs a rate ops put here


def test_currency_rates_are_kept_exact() -> None:
    data = raw()
    data["currency_rates"] = {"JPY": 0.0067, "EUR": "1.08", "GBP": 1}
    assert Playbook.from_dict(data).currency_rates == {"JPY": "0.0067", "EUR": "1.08", "GBP": "1"}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("qualify_score",), 101, "playbook.qualify_score: must be between 0 and 100"),
        (("programs", "review", "min_tier"), "diamond", "playbook.programs.review.min_tier: unknown tier"),
        (("programs", "pottery"), {"effort": 1, "min_tier": "bronze"}, "playbook.programs.pottery: unknown program"),
        (("ask_budget", "min_gap"), "three weeks", "playbook.ask_budget.min_gap: expected a duration"),
        (("rewards", "referral", "mode"), "double", "playbook.rewards.referral.mode"),
        (("signals", "nps_promoter"), 500, "playbook.signals.nps_promoter"),
        (("rewards", "currency"), "dollars", "playbook.rewards.currency"),
        (("cadence",), 1, "playbook.cadence: unknown setting"),
        (("currency_rates",), [0.0067], "playbook.currency_rates: expected a mapping"),
        (("currency_rates", "JPY"), "cheap", "playbook.currency_rates.JPY: expected a number"),
        (("currency_rates", "JPY"), 0, "playbook.currency_rates.JPY: must be a number above 0"),
        (("currency_rates", "yen"), 0.0067, "playbook.currency_rates.yen: expected a three-letter currency code"),
        (("currency_rates", "USD"), 2, "playbook.currency_rates.USD: the reward currency itself converts at 1"),
        (("programs", "review", "qualify"), {"promoter": True}, "playbook.programs.review.qualify: expected a list"),
        (
            ("programs", "review", "qualify"),
            [{"promoter": "yes"}],
            "playbook.programs.review.qualify[0].promoter: expected true or false",
        ),
        (
            ("programs", "review", "qualify"),
            [{"min_tier": "diamond"}],
            "playbook.programs.review.qualify[0].min_tier: unknown tier",
        ),
        (("programs", "review", "qualify"), [{"nps": 10}], "playbook.programs.review.qualify[0].nps: unknown setting"),
        (("programs", "review", "qualify"), [{}], "playbook.programs.review.qualify[0]: expected a mapping"),
        (("fit", "unknown", "segment"), "some", "playbook.fit.unknown.segment: expected a whole number"),
        (("fit", "unknown", "region"), 5, "playbook.fit.unknown.region: unknown setting"),
        (("referral_links", "share_text"), "Try {product}!", "playbook.referral_links.share_text: only {company}"),
        (("referral_links", "share_text"), "x" * 241, "playbook.referral_links.share_text: expected a text"),
        (("referral_links", "hashtag"), "#two words", "playbook.referral_links.hashtag: letters, digits"),
    ],
)
def test_bad_playbook_names_the_setting(path: tuple[str, ...], value: Any, message: str, tmp_path: Path) -> None:
    data = raw()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(PlaybookError) as err:
        read_playbook(file)
    assert message in str(err.value)


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="cannot read"):
        read_playbook(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [unclosed")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        read_playbook(broken)


def test_durations() -> None:
    assert parse_duration("21d", "x") == 21 * 86400
    assert parse_duration("1.5h", "x") == 5400
    assert parse_duration(30, "x") == 30
    with pytest.raises(PlaybookError):
        parse_duration("-1d", "x")


def test_qualification_defaults_and_neutral_fit() -> None:
    data = raw()
    for program in data["programs"].values():
        program.pop("qualify", None)
    data["fit"].pop("unknown")
    pb = Playbook.from_dict(data)
    # A playbook that names no ways in gets the default ladder; unknown fit counts the lower median.
    assert [way.describe() for way in pb.program("review").ways_in()] == ["a promoter NPS"]
    assert [way.describe() for way in pb.program("advisory_board").ways_in()] == ["champion status"]
    assert (pb.fit_for_unknown("segment"), pb.fit_for_unknown("plan")) == (15, 5)
    data["programs"]["review"]["qualify"] = []
    assert Playbook.from_dict(data).program("review").ways_in() == []  # tier only, said explicitly
