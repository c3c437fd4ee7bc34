"""Message and state types shared by the workflow, activities, CLI and tests.

Imports nothing heavy so the workflow sandbox, the worker and the CLI can all
use it. Every field added later must get a default: running journeys and the
recorded histories in tests/histories must keep deserialising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_TYPE = "AdvocacyJourney"
SIGNAL_EVENT = "customer_event"
QUERY_STATE = "state"
DEFAULT_TASK_QUEUE = "advocacy-journeys"

STAGES = (
    "listening",
    "qualified",
    "engaged",
    "advocate",
    "champion",
    "at_risk",
    "opted_out",
    "churned",
)
PROGRAMS = ("review", "referral", "reference", "case_study", "speaking", "advisory_board")
ASK_STATUSES = ("scheduled", "sent", "reminded", "completed", "declined", "cancelled")
OPEN_ASK_STATUSES = ("scheduled", "sent", "reminded")
REWARD_STATUSES = ("pending", "approved", "issued", "void")

# Custom search attributes (contract) and their Temporal types.
SEARCH_ATTRIBUTES = {
    "AdvocacyStage": "Keyword",
    "AdvocateTier": "Keyword",
    "AdvocateScore": "Int",
    "LastNps": "Int",
    "CustomerId": "Keyword",
    # Beyond the contract: flags for everyday ops queries (send_failed, referral_reward_pending, ...).
    "AdvocacyFlags": "KeywordList",
}


def workflow_id_for(customer_id: str) -> str:
    return f"advocacy-{customer_id}"


@dataclass
class CustomerEvent:
    event_id: str
    customer_id: str
    type: str
    occurred_at: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Profile:
    email: str | None = None
    name: str | None = None
    company: str | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None
    plan: str | None = None
    updated_at: str | None = None


@dataclass
class Ask:
    ask_id: str
    program: str
    status: str
    created_at: str
    sent_at: str | None = None
    reminded_at: str | None = None
    completed_at: str | None = None
    closed_at: str | None = None
    error: str | None = None
    clicked_at: str | None = None


@dataclass
class Reward:
    reward_id: str
    program: str
    amount: float
    currency: str
    status: str
    kind: str = "gift_card"
    beneficiary: str = "advocate"
    referral_id: str | None = None
    created_at: str | None = None
    hold_until: str | None = None
    void_reason: str | None = None


@dataclass
class Referral:
    referral_id: str
    referee_email: str
    status: str  # submitted | opportunity | won | lost
    submitted_at: str
    referee_name: str | None = None
    referee_company: str | None = None
    amount: float | None = None
    currency: str | None = None
    updated_at: str | None = None


@dataclass
class Signal:
    """One line of the explainable score record: what moved the score, and when."""

    at: str
    event_type: str
    delta: int
    reason: str


@dataclass
class JourneyState:
    customer_id: str
    stage: str = "listening"
    tier: str = "none"
    score: int = 0
    last_nps: int | None = None
    paused: bool = False
    opted_out: bool = False
    churned: bool = False
    events_applied: int = 0
    asks: list[Ask] = field(default_factory=list)
    rewards: list[Reward] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    referral_code: str | None = None
    profile: Profile = field(default_factory=Profile)
    # Score parts: fit (from the profile), results (positive signals), risk.
    fit: int = 0
    results: int = 0
    risk: int = 0
    signals: list[Signal] = field(default_factory=list)
    nps_history: list[int] = field(default_factory=list)
    last_nps_at: str | None = None
    last_positive_at: str | None = None
    completed: dict[str, int] = field(default_factory=dict)
    last_completed_at: dict[str, str] = field(default_factory=dict)
    churn_risk: str = "low"
    at_risk_since: str | None = None
    at_risk_until: str | None = None
    positive_since_risk: bool = False
    cooldown_until: str | None = None
    champion_notified: bool = False
    seen_event_ids: list[str] = field(default_factory=list)
    rejected_events: int = 0
    last_rejection: str | None = None
    playbook_version: str | None = None
    runs: int = 1
    started_at: str | None = None
    last_error: str | None = None
    # Set when the mail provider reports the address undeliverable; email asks stop until a new address.
    email_undeliverable: str | None = None
    # Completed activities by program and key (a review per site): one without an ask counts once.
    completion_keys: list[str] = field(default_factory=list)


@dataclass
class JourneyInput:
    customer_id: str
    state: JourneyState | None = None
    # Events received but not yet applied when the previous run continued-as-new.
    pending_events: list[dict[str, Any]] = field(default_factory=list)
    # Continue-as-new once history reaches this many events (or when the server suggests it).
    max_history_length: int = 2000


# ---- updates -----------------------------------------------------------------


@dataclass
class PauseInput:
    reason: str = ""


@dataclass
class OptOutInput:
    reason: str = ""


@dataclass
class ChurnInput:
    reason: str = ""


@dataclass
class EmailFeedbackInput:
    """What the mail provider reported (SendGrid event webhook): `undeliverable` or `click`."""

    kind: str
    ask_id: str | None = None
    reason: str = ""


@dataclass
class SubmitReferralInput:
    referee_email: str
    referee_name: str | None = None
    referee_company: str | None = None


@dataclass
class JourneyStatus:
    stage: str
    paused: bool
    opted_out: bool


@dataclass
class SubmitReferralResult:
    referral_id: str
    status: str


# ---- activities --------------------------------------------------------------


@dataclass
class LoadPlaybookInput:
    path: str | None = None


@dataclass
class SendEmailInput:
    idempotency_key: str
    customer_id: str
    template: str
    to_email: str
    locale: str = "en"
    ask_id: str | None = None
    program: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendEmailResult:
    message_id: str
    provider_message_id: str
    sent_at: str
    already_sent: bool = False


@dataclass
class RecordAskInput:
    customer_id: str
    ask: Ask


@dataclass
class RecordRewardInput:
    customer_id: str
    reward: Reward


@dataclass
class SettleRewardInput:
    customer_id: str
    reward_id: str
    status: str  # issued | void
    reason: str | None = None


@dataclass
class RecordReferralInput:
    customer_id: str
    referral: Referral
    referral_code: str | None = None


@dataclass
class RecordCustomerInput:
    customer_id: str
    profile: Profile
    referral_code: str | None = None
