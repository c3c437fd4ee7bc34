"""The playbook: every threshold, cadence, program, reward and cap, as validated data.

Pure (no file access): the `load_playbook` activity reads the file and calls
`Playbook.from_dict`, so the history of each run records the playbook it used.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from workflows.model import PROGRAMS


class PlaybookError(ValueError):
    pass


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, where: str) -> float:
    """'21d', '8h', '30m', '45s', '2w' or a number of seconds."""
    if isinstance(value, bool):
        raise PlaybookError(f"{where}: expected a duration like '21d', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise PlaybookError(f"{where}: expected a duration like '21d', '8h' or seconds, got {value!r}")
    if seconds < 0:
        raise PlaybookError(f"{where}: must not be negative")
    return seconds


@dataclass
class Tier:
    name: str
    min_score: int


@dataclass
class RewardSpec:
    kind: str = "gift_card"  # gift_card | credit | swag | recognition | cash
    amount: float = 0.0
    currency: str = "USD"
    hold_seconds: float = 0.0


@dataclass
class ReferralRewardSpec:
    mode: str = "greater_of"  # flat | percent | greater_of
    flat: float = 10.0
    percent: float = 3.0
    currency: str = "USD"
    kind: str = "cash"
    hold_seconds: float = 30 * 86400.0
    referee_kind: str = "credit"
    referee_amount: float = 0.0
    referee_currency: str = "USD"


@dataclass
class Qualifier:
    """One way into a program: all of what it names must hold."""

    promoter: bool = False  # the latest NPS answer is a promoter's
    min_tier: str | None = None
    min_completed: int = 0
    champion: bool = False

    def describe(self) -> str:
        parts = [
            *(["a promoter NPS"] if self.promoter else []),
            *([f"tier {self.min_tier}"] if self.min_tier else []),
            *([f"{self.min_completed} completed activities"] if self.min_completed else []),
            *(["champion status"] if self.champion else []),
        ]
        return " and ".join(parts) or "nothing"


DEFAULT_SHARE_TEXT = "We use {company} and I think your team would like it too. {hashtag}"

# Ways into each program besides its tier, for playbooks that name none (`qualify` absent): low-effort
# asks open on the promoter signal itself, the higher rungs on demonstrated advocacy.
DEFAULT_WAYS_IN: dict[str, list[Qualifier]] = {
    "review": [Qualifier(promoter=True)],
    "referral": [Qualifier(promoter=True)],
    "reference": [Qualifier(promoter=True)],
    "case_study": [Qualifier(min_completed=3)],
    "speaking": [Qualifier(champion=True)],
    "advisory_board": [Qualifier(champion=True)],
}


@dataclass
class ProgramSpec:
    name: str
    effort: int
    min_tier: str
    min_completed: int = 0
    requires_champion: bool = False
    repeat_after_seconds: float | None = None  # None: once only
    max_churn_risk: str = "low"  # highest churn-risk level at which we still ask
    reward: RewardSpec | None = None
    link: str | None = None
    # Ways in besides `min_tier` (any one will do; the gates above hold for all). None: DEFAULT_WAYS_IN.
    qualify: list[Qualifier] | None = None

    def ways_in(self) -> list[Qualifier]:
        return DEFAULT_WAYS_IN.get(self.name, []) if self.qualify is None else self.qualify


@dataclass
class BusinessHours:
    start_hour: int = 9
    end_hour: int = 17
    weekdays: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    default_timezone: str = "UTC"


@dataclass
class Playbook:
    version: str
    qualify_score: int
    tiers: list[Tier]
    programs: list[ProgramSpec]
    signals: dict[str, int]
    fit: dict[str, dict[str, int]]
    # Points for a profile field that is not known (no segment, no plan): neutral, not zero. A field
    # missing here counts the lower median of its points (`fit_for_unknown`).
    fit_unknown: dict[str, int] = field(default_factory=dict)
    promoter_min: int = 9
    detractor_max: int = 6
    # Invite only within this long after a positive moment (a promoter NPS, a milestone...).
    moment_window_seconds: float = 14 * 86400.0
    ask_min_gap_seconds: float = 21 * 86400.0
    ask_window_seconds: float = 90 * 86400.0
    ask_max_per_window: int = 4
    reminder_after_seconds: float = 7 * 86400.0
    decline_after_seconds: float = 7 * 86400.0
    decline_cooldown_seconds: float = 30 * 86400.0
    redecline_after_seconds: float = 180 * 86400.0
    risk_cooldown_seconds: float = 60 * 86400.0
    champion_min_completed: int = 3
    champion_sustained_nps: int = 2
    annual_reward_cap: float = 1000.0
    reward_currency: str = "USD"
    referral_reward: ReferralRewardSpec = field(default_factory=ReferralRewardSpec)
    team_email: str = "advocacy-team@example.com"
    business_hours: BusinessHours | None = field(default_factory=BusinessHours)
    max_signals_kept: int = 100
    max_event_ids_kept: int = 5000
    # Every link in a customer email carries utm_source/medium/campaign (`templates check` enforces it).
    require_utm: bool = True
    # The HTTP API's referral links: how long a click attributes a signup, and referrals per advocate per day.
    referral_attribution_seconds: float = 30 * 86400.0
    referral_max_per_day: int = 5
    # What the advocate's page pre-writes when they share their link: {company} and {hashtag} are filled in
    # (the hashtag defaults to the company's name without spaces).
    share_text: str = DEFAULT_SHARE_TEXT
    share_hashtag: str | None = None
    # What one unit of a deal's currency is worth in the referral reward currency, as decimal strings
    # (exact, and plain JSON in histories). A deal in a currency without a rate earns no percentage reward.
    currency_rates: dict[str, str] = field(default_factory=dict)

    def program(self, name: str) -> ProgramSpec:
        for spec in self.programs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def fit_for_unknown(self, key: str) -> int:
        if key in self.fit_unknown:
            return self.fit_unknown[key]
        points = list(self.fit.get(key, {}).values())
        return int(statistics.median_low(points)) if points else 0

    def tier_rank(self, name: str) -> int:
        for rank, tier in enumerate(self.tiers):
            if tier.name == name:
                return rank
        return -1

    @staticmethod
    def from_dict(raw: Any) -> Playbook:
        return _build(raw)


# Signals added after the first release default, so existing playbooks stay valid.
_OPTIONAL_SIGNALS = {"email_click": 2}
_SIGNAL_KEYS = (
    "nps_promoter",
    "nps_passive",
    "nps_detractor",
    "csat_high",
    "csat_low",
    "usage_milestone",
    "support_resolved_satisfied",
    "support_resolved_unsatisfied",
    "support_escalation",
    "renewal",
    "social_positive",
    "social_negative",
    "churn_risk_low",
    "churn_risk_medium",
    "churn_risk_high",
    "activity_completed",
)
_RISK_LEVELS = ("low", "medium", "high")


def _need(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise PlaybookError(f"{where}.{key}: required")
    return raw[key]


def _num(value: Any, where: str, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlaybookError(f"{where}: expected a number, got {value!r}")
    if value < minimum:
        raise PlaybookError(f"{where}: must be at least {minimum:g}")
    return float(value)


def _int(value: Any, where: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlaybookError(f"{where}: expected a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise PlaybookError(f"{where}: must be {bound}")
    return value


def _share_text(value: Any) -> str:
    where = "playbook.referral_links.share_text"
    if not isinstance(value, str) or not value.strip() or len(value) > 240:
        raise PlaybookError(f"{where}: expected a text of at most 240 characters")
    try:
        value.format(company="Acme", hashtag="#Acme")
    except (KeyError, IndexError, ValueError) as err:
        raise PlaybookError(f"{where}: only {{company}} and {{hashtag}} may be filled in ({err})") from None
    return value


def _hashtag(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"#?[0-9A-Za-z_]{1,50}", value):
        raise PlaybookError("playbook.referral_links.hashtag: letters, digits and _ (at most 50), e.g. '#Acme'")
    return value if value.startswith("#") else f"#{value}"


def _ways_in(raw: Any, where: str, tier_names: list[str]) -> list[Qualifier]:
    if not isinstance(raw, list):
        raise PlaybookError(f"{where}: expected a list of ways in, e.g. [{{promoter: true}}, {{min_completed: 3}}]")
    ways = []
    for n, item in enumerate(raw):
        at = f"{where}[{n}]"
        if not isinstance(item, dict) or not item:
            raise PlaybookError(f"{at}: expected a mapping of promoter, min_tier, min_completed, champion")
        _check_keys(item, {"promoter", "min_tier", "min_completed", "champion"}, at)
        tier = item.get("min_tier")
        if tier is not None and tier not in tier_names:
            raise PlaybookError(f"{at}.min_tier: unknown tier {tier!r}; one of {', '.join(tier_names)}")
        ways.append(
            Qualifier(
                promoter=_flag(item.get("promoter", False), f"{at}.promoter"),
                min_tier=tier,
                min_completed=_int(item.get("min_completed", 0), f"{at}.min_completed"),
                champion=_flag(item.get("champion", False), f"{at}.champion"),
            )
        )
    return ways


def _reward(raw: Any, where: str) -> RewardSpec:
    if not isinstance(raw, dict):
        raise PlaybookError(f"{where}: expected a mapping")
    _check_keys(raw, {"kind", "amount", "currency", "hold"}, where)
    return RewardSpec(
        kind=str(raw.get("kind", "gift_card")),
        amount=_num(raw.get("amount", 0), f"{where}.amount"),
        currency=_currency(raw.get("currency", "USD"), f"{where}.currency"),
        hold_seconds=parse_duration(raw.get("hold", 0), f"{where}.hold"),
    )


def _currency(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Z]{3}$", value):
        raise PlaybookError(f"{where}: expected a three-letter currency code, got {value!r}")
    return value


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise PlaybookError(f"{where}.{unknown[0]}: unknown setting")


_TOP_KEYS = {
    "version", "qualify_score", "tiers", "programs", "signals", "fit", "promoter_min",
    "detractor_max", "moment_window", "ask_budget", "reminder_after", "decline_after",
    "decline_cooldown", "redecline_after", "risk_cooldown", "champion", "rewards",
    "team_email", "business_hours", "max_signals_kept", "max_event_ids_kept", "require_utm",
    "referral_links", "currency_rates",
}  # fmt: skip


def _build(raw: Any) -> Playbook:
    if not isinstance(raw, dict):
        raise PlaybookError("playbook: expected a mapping at the top level")
    _check_keys(raw, _TOP_KEYS, "playbook")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise PlaybookError("playbook.version: required string")
    version = f"{version}+{fingerprint(raw)}"

    tiers_raw = _need(raw, "tiers", "playbook")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise PlaybookError("playbook.tiers: expected a non-empty list")
    tiers = []
    for i, item in enumerate(tiers_raw):
        where = f"playbook.tiers[{i}]"
        if not isinstance(item, dict):
            raise PlaybookError(f"{where}: expected a mapping")
        tiers.append(
            Tier(
                name=str(_need(item, "name", where)),
                min_score=_int(_need(item, "min_score", where), f"{where}.min_score", maximum=100),
            )
        )
    if [t.min_score for t in tiers] != sorted(t.min_score for t in tiers):
        raise PlaybookError("playbook.tiers: min_score must increase from one tier to the next")
    tier_names = [t.name for t in tiers]

    programs_raw = _need(raw, "programs", "playbook")
    if not isinstance(programs_raw, dict) or not programs_raw:
        raise PlaybookError("playbook.programs: expected a mapping of program name to settings")
    programs = []
    for name, item in programs_raw.items():
        where = f"playbook.programs.{name}"
        if name not in PROGRAMS:
            raise PlaybookError(f"{where}: unknown program; one of {', '.join(PROGRAMS)}")
        if not isinstance(item, dict):
            raise PlaybookError(f"{where}: expected a mapping")
        _check_keys(
            item,
            {
                "effort",
                "min_tier",
                "min_completed",
                "requires_champion",
                "repeat_after",
                "max_churn_risk",
                "reward",
                "link",
                "qualify",
            },
            where,
        )
        min_tier = str(_need(item, "min_tier", where))
        if min_tier not in tier_names:
            raise PlaybookError(f"{where}.min_tier: unknown tier {min_tier!r}; one of {', '.join(tier_names)}")
        risk = str(item.get("max_churn_risk", "low"))
        if risk not in _RISK_LEVELS:
            raise PlaybookError(f"{where}.max_churn_risk: one of {', '.join(_RISK_LEVELS)}")
        repeat = item.get("repeat_after")
        programs.append(
            ProgramSpec(
                name=name,
                effort=_int(_need(item, "effort", where), f"{where}.effort", minimum=1),
                min_tier=min_tier,
                min_completed=_int(item.get("min_completed", 0), f"{where}.min_completed"),
                requires_champion=bool(item.get("requires_champion", False)),
                repeat_after_seconds=None if repeat is None else parse_duration(repeat, f"{where}.repeat_after"),
                max_churn_risk=risk,
                reward=None if item.get("reward") is None else _reward(item["reward"], f"{where}.reward"),
                link=item.get("link"),
                qualify=None if "qualify" not in item else _ways_in(item["qualify"], f"{where}.qualify", tier_names),
            )
        )
    programs.sort(key=lambda p: p.effort)

    signals_raw = _need(raw, "signals", "playbook")
    if not isinstance(signals_raw, dict):
        raise PlaybookError("playbook.signals: expected a mapping")
    _check_keys(signals_raw, set(_SIGNAL_KEYS) | set(_OPTIONAL_SIGNALS), "playbook.signals")
    signals = {}
    for key in (*_SIGNAL_KEYS, *_OPTIONAL_SIGNALS):
        value = (
            signals_raw.get(key, _OPTIONAL_SIGNALS[key])
            if key in _OPTIONAL_SIGNALS
            else _need(signals_raw, key, "playbook.signals")
        )
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 100:
            raise PlaybookError(f"playbook.signals.{key}: expected a whole number between -100 and 100")
        signals[key] = value

    fit_raw = raw.get("fit", {})
    if not isinstance(fit_raw, dict) or not all(isinstance(v, dict) for v in fit_raw.values()):
        raise PlaybookError("playbook.fit: expected a mapping of profile field to {value: points}")
    _check_keys(fit_raw, {"segment", "plan", "unknown"}, "playbook.fit")
    fit = {
        k: {str(a): _int(b, f"playbook.fit.{k}.{a}", maximum=50) for a, b in v.items()}
        for k, v in fit_raw.items()
        if k != "unknown"
    }
    _check_keys(fit_raw.get("unknown", {}), {"segment", "plan"}, "playbook.fit.unknown")

    budget = raw.get("ask_budget", {})
    if not isinstance(budget, dict):
        raise PlaybookError("playbook.ask_budget: expected a mapping")
    _check_keys(budget, {"min_gap", "window", "max_per_window"}, "playbook.ask_budget")
    links = raw.get("referral_links", {})
    if not isinstance(links, dict):
        raise PlaybookError("playbook.referral_links: expected a mapping")
    _check_keys(links, {"attribution_window", "max_per_day", "share_text", "hashtag"}, "playbook.referral_links")
    champion = raw.get("champion", {})
    if not isinstance(champion, dict):
        raise PlaybookError("playbook.champion: expected a mapping")
    _check_keys(champion, {"min_completed", "sustained_nps"}, "playbook.champion")
    rewards = raw.get("rewards", {})
    if not isinstance(rewards, dict):
        raise PlaybookError("playbook.rewards: expected a mapping")
    _check_keys(rewards, {"annual_cap", "currency", "referral"}, "playbook.rewards")
    referral_raw = rewards.get("referral", {})
    if not isinstance(referral_raw, dict):
        raise PlaybookError("playbook.rewards.referral: expected a mapping")
    _check_keys(
        referral_raw, {"mode", "flat", "percent", "currency", "kind", "hold", "referee"}, "playbook.rewards.referral"
    )
    mode = referral_raw.get("mode", "greater_of")
    if mode not in ("flat", "percent", "greater_of"):
        raise PlaybookError("playbook.rewards.referral.mode: one of flat, percent, greater_of")
    referee = referral_raw.get("referee", {})
    if not isinstance(referee, dict):
        raise PlaybookError("playbook.rewards.referral.referee: expected a mapping")
    referral = ReferralRewardSpec(
        mode=mode,
        flat=_num(referral_raw.get("flat", 10), "playbook.rewards.referral.flat"),
        percent=_num(referral_raw.get("percent", 3), "playbook.rewards.referral.percent"),
        currency=_currency(referral_raw.get("currency", "USD"), "playbook.rewards.referral.currency"),
        kind=str(referral_raw.get("kind", "cash")),
        hold_seconds=parse_duration(referral_raw.get("hold", "30d"), "playbook.rewards.referral.hold"),
        referee_kind=str(referee.get("kind", "credit")),
        referee_amount=_num(referee.get("amount", 0), "playbook.rewards.referral.referee.amount"),
        referee_currency=_currency(referee.get("currency", "USD"), "playbook.rewards.referral.referee.currency"),
    )
    if referral.percent > 100:
        raise PlaybookError("playbook.rewards.referral.percent: must be at most 100")

    hours_raw = raw.get("business_hours", {})
    hours: BusinessHours | None
    if hours_raw is None:
        hours = None
    elif isinstance(hours_raw, dict):
        _check_keys(hours_raw, {"start_hour", "end_hour", "weekdays", "default_timezone"}, "playbook.business_hours")
        hours = BusinessHours(
            start_hour=_int(hours_raw.get("start_hour", 9), "playbook.business_hours.start_hour", maximum=23),
            end_hour=_int(hours_raw.get("end_hour", 17), "playbook.business_hours.end_hour", minimum=1, maximum=24),
            weekdays=[
                _int(d, "playbook.business_hours.weekdays[]", maximum=6)
                for d in hours_raw.get("weekdays", [0, 1, 2, 3, 4])
            ],
            default_timezone=str(hours_raw.get("default_timezone", "UTC")),
        )
        if hours.start_hour >= hours.end_hour or not hours.weekdays:
            raise PlaybookError(
                "playbook.business_hours: start_hour must be before end_hour, with at least one weekday"
            )
    else:
        raise PlaybookError("playbook.business_hours: expected a mapping, or null for any time")

    playbook = Playbook(
        version=version,
        qualify_score=_int(_need(raw, "qualify_score", "playbook"), "playbook.qualify_score", maximum=100),
        tiers=tiers,
        programs=programs,
        signals=signals,
        fit=fit,
        fit_unknown={
            k: _int(v, f"playbook.fit.unknown.{k}", maximum=50) for k, v in fit_raw.get("unknown", {}).items()
        },
        promoter_min=_int(raw.get("promoter_min", 9), "playbook.promoter_min", maximum=10),
        detractor_max=_int(raw.get("detractor_max", 6), "playbook.detractor_max", maximum=10),
        moment_window_seconds=parse_duration(raw.get("moment_window", "14d"), "playbook.moment_window"),
        ask_min_gap_seconds=parse_duration(budget.get("min_gap", "21d"), "playbook.ask_budget.min_gap"),
        ask_window_seconds=parse_duration(budget.get("window", "90d"), "playbook.ask_budget.window"),
        ask_max_per_window=_int(budget.get("max_per_window", 4), "playbook.ask_budget.max_per_window", minimum=1),
        reminder_after_seconds=parse_duration(raw.get("reminder_after", "7d"), "playbook.reminder_after"),
        decline_after_seconds=parse_duration(raw.get("decline_after", "7d"), "playbook.decline_after"),
        decline_cooldown_seconds=parse_duration(raw.get("decline_cooldown", "30d"), "playbook.decline_cooldown"),
        redecline_after_seconds=parse_duration(raw.get("redecline_after", "180d"), "playbook.redecline_after"),
        risk_cooldown_seconds=parse_duration(raw.get("risk_cooldown", "60d"), "playbook.risk_cooldown"),
        champion_min_completed=_int(champion.get("min_completed", 3), "playbook.champion.min_completed", minimum=1),
        champion_sustained_nps=_int(champion.get("sustained_nps", 2), "playbook.champion.sustained_nps", minimum=1),
        annual_reward_cap=_num(rewards.get("annual_cap", 1000), "playbook.rewards.annual_cap"),
        reward_currency=_currency(rewards.get("currency", "USD"), "playbook.rewards.currency"),
        referral_reward=referral,
        team_email=str(raw.get("team_email", "advocacy-team@example.com")),
        business_hours=hours,
        max_signals_kept=_int(raw.get("max_signals_kept", 100), "playbook.max_signals_kept", minimum=10),
        max_event_ids_kept=_int(raw.get("max_event_ids_kept", 5000), "playbook.max_event_ids_kept", minimum=100),
        require_utm=_flag(raw.get("require_utm", True), "playbook.require_utm"),
        referral_attribution_seconds=parse_duration(
            links.get("attribution_window", "30d"), "playbook.referral_links.attribution_window"
        ),
        referral_max_per_day=_int(links.get("max_per_day", 5), "playbook.referral_links.max_per_day", minimum=1),
        share_text=_share_text(links.get("share_text", DEFAULT_SHARE_TEXT)),
        share_hashtag=_hashtag(links.get("hashtag")),
        currency_rates=_rates(raw.get("currency_rates", {}), referral.currency),
    )
    if playbook.detractor_max >= playbook.promoter_min:
        raise PlaybookError("playbook.detractor_max: must be below promoter_min")
    return playbook


def _rates(raw: Any, reward_currency: str) -> dict[str, str]:
    """`currency_rates`: {CODE: units of the referral reward currency per unit of CODE}, each exact."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PlaybookError("playbook.currency_rates: expected a mapping of currency code to rate")
    rates = {}
    for code, value in raw.items():
        where = f"playbook.currency_rates.{code}"
        _currency(code, where)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise PlaybookError(f"{where}: expected a number like 0.0067, got {value!r}")
        try:
            rate = Decimal(str(value).strip())
        except InvalidOperation:
            raise PlaybookError(f"{where}: expected a number like 0.0067, got {value!r}") from None
        if not rate.is_finite() or rate <= 0:
            raise PlaybookError(f"{where}: must be a number above 0")
        if code == reward_currency and rate != 1:
            raise PlaybookError(f"{where}: the reward currency itself converts at 1")
        rates[code] = str(rate)
    return rates


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PlaybookError(f"{where}: expected true or false")
    return value


def fingerprint(raw: Any) -> str:
    """Short content hash so `playbook_version` names the exact data a run used."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:10]
