"""Message and state types shared by the workflow, activities, CLI and tests.

Imports nothing heavy so the workflow sandbox, the worker and the CLI can all
use it. Every field added later must get a default: running journeys and the
recorded histories in tests/histories must keep deserialising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey

# Contract names: other systems, runbooks and acceptance checks depend on them.
WORKFLOW_TYPE = "AdvocacyJourney"
SIGNAL_EVENT = "customer_event"
QUERY_STATE = "state"
DEFAULT_TASK_QUEUE = "advocacy-journeys"
WORKFLOW_ID_PREFIX = "advocacy-"

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

# Custom search attributes (contract): the only definition of their names and types.
SA_STAGE = SearchAttributeKey.for_keyword("AdvocacyStage")
SA_TIER = SearchAttributeKey.for_keyword("AdvocateTier")
SA_SCORE = SearchAttributeKey.for_int("AdvocateScore")
SA_NPS = SearchAttributeKey.for_int("LastNps")
SA_CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
# Beyond the first contract: flags for everyday ops queries (send_failed, referral_reward_pending, ...).
SA_FLAGS = SearchAttributeKey.for_keyword_list("AdvocacyFlags")
SEARCH_ATTRIBUTE_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    SA_STAGE,
    SA_TIER,
    SA_SCORE,
    SA_NPS,
    SA_CUSTOMER,
    SA_FLAGS,
)
# Name -> the type's name as the temporal CLI and compose files write it (Keyword, Int, KeywordList).
SEARCH_ATTRIBUTES = {key.name: key.indexed_value_type.name.title().replace("_", "") for key in SEARCH_ATTRIBUTE_KEYS}
# A journey's earlier runs stay in visibility with the search attributes they ended with (status
# ContinuedAsNew): questions about journeys as they are now look at each journey's latest run only.
LATEST_RUNS = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus != "ContinuedAsNew"'


def workflow_id_for(customer_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{customer_id}"


def customer_id_of(workflow_id: str) -> str | None:
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX) if workflow_id.startswith(WORKFLOW_ID_PREFIX) else None


@dataclass(kw_only=True)
class CustomerEvent:
    event_id: str
    customer_id: str
    type: str
    occurred_at: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Profile:
    email: str | None = None
    name: str | None = None
    company: str | None = None
    timezone: str | None = None
    locale: str | None = None
    segment: str | None = None
    plan: str | None = None
    updated_at: str | None = None


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class ScoreEntry:
    """One line of the explainable score log: what moved the score, and when."""

    at: str
    event_type: str
    delta: int
    reason: str


# How often a customer is willing to be asked (their preference, on top of the playbook's ask budget):
# the least time between two asks, in days; "program" leaves it to the playbook.
ASK_FREQUENCIES = {"program": 0, "monthly": 30, "quarterly": 90}


@dataclass(kw_only=True)
class Preferences:
    """What the customer chose on their page: how often to be asked, programs they do not want, a pause."""

    frequency: str = "program"
    skip_programs: list[str] = field(default_factory=list)
    paused_until: str | None = None  # ISO 8601 UTC; asks resume at this moment
    updated_at: str | None = None


@dataclass(kw_only=True)
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
    # Was `signals` (a word Temporal uses for something else); states carried over by continue-as-new
    # before the rename still decode (workflows.converter reads the old key).
    score_log: list[ScoreEntry] = field(default_factory=list, metadata={"was": "signals"})
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
    # The next ask, or why there is none right now ("why didn't we ask Acme?"): workflows.policy.plan_ask.
    ask_outlook: str | None = None
    preferences: Preferences = field(default_factory=Preferences)


@dataclass(kw_only=True)
class JourneyInput:
    customer_id: str
    state: JourneyState | None = None
    # Events received but not yet applied when the previous run continued-as-new.
    pending_events: list[dict[str, Any]] = field(default_factory=list)
    # Continue-as-new once history reaches this many events (or when the server suggests it).
    max_history_length: int = 2000


# ---- updates -----------------------------------------------------------------


@dataclass(kw_only=True)
class PauseInput:
    reason: str = ""


@dataclass(kw_only=True)
class OptOutInput:
    reason: str = ""


@dataclass(kw_only=True)
class ChurnInput:
    reason: str = ""


@dataclass(kw_only=True)
class EmailFeedbackInput:
    """What the mail provider reported (SendGrid event webhook): `undeliverable` or `click`."""

    kind: str
    ask_id: str | None = None
    reason: str = ""


@dataclass(kw_only=True)
class SubmitReferralInput:
    referee_email: str
    referee_name: str | None = None
    referee_company: str | None = None


@dataclass(kw_only=True)
class AnswerAskInput:
    """The customer's answer to an ask, from their page: accept (reference, speaking, advisory board) or decline."""

    ask_id: str
    accepted: bool


@dataclass(kw_only=True)
class SubmitStoryInput:
    """A case-study ask's story was stored from the advocate's page (the story itself stays in the database)."""

    ask_id: str


@dataclass(kw_only=True)
class AnswerAskResult:
    ask_id: str
    program: str
    status: str
    # False when the ask was no longer open: the answer changed nothing.
    changed: bool = False


@dataclass(kw_only=True)
class SetPreferencesInput:
    """The customer's preferences from their page; the whole set each time (what is not named is not wanted)."""

    frequency: str = "program"
    skip_programs: list[str] = field(default_factory=list)
    paused_until: str | None = None  # ISO 8601; None (or a past moment) ends a pause


@dataclass(kw_only=True)
class SetPreferencesResult:
    preferences: Preferences
    # False when the journey already had exactly these preferences: nothing changed.
    changed: bool = False


@dataclass(kw_only=True)
class ForgetRefereeInput:
    """Right to erasure of someone this advocate referred: their address, and what stands in for it."""

    emails: list[str]
    placeholder: str


@dataclass(kw_only=True)
class JourneyStatus:
    stage: str
    paused: bool
    opted_out: bool


@dataclass(kw_only=True)
class SubmitReferralResult:
    referral_id: str
    status: str


# ---- activities --------------------------------------------------------------


@dataclass(kw_only=True)
class LoadPlaybookInput:
    path: str | None = None


@dataclass(kw_only=True)
class SendEmailInput:
    idempotency_key: str
    customer_id: str
    template: str
    to_email: str
    locale: str = "en"
    ask_id: str | None = None
    program: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class SendEmailResult:
    message_id: str
    provider_message_id: str
    sent_at: str
    already_sent: bool = False


@dataclass(kw_only=True)
class RecordAskInput:
    customer_id: str
    ask: Ask


@dataclass(kw_only=True)
class RecordRewardInput:
    customer_id: str
    reward: Reward


@dataclass(kw_only=True)
class SettleRewardInput:
    customer_id: str
    reward_id: str
    status: str  # issued | void
    reason: str | None = None


@dataclass(kw_only=True)
class RecordReferralInput:
    customer_id: str
    referral: Referral
    referral_code: str | None = None


@dataclass(kw_only=True)
class RecordCustomerInput:
    customer_id: str
    profile: Profile
    referral_code: str | None = None
