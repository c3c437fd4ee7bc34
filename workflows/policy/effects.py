"""Effects: what the policy asks the workflow to make happen, each run as one idempotent activity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflows.model import Ask, Referral, Reward


@dataclass(kw_only=True)
class SendEmail:
    key: str
    template: str
    to_email: str
    step: str  # invite | reminder | thanks | reward | team
    ask_id: str | None = None
    program: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass(kw_only=True)
class RecordAsk:
    ask: Ask


@dataclass(kw_only=True)
class RecordReward:
    reward: Reward


@dataclass(kw_only=True)
class SettleReward:
    reward_id: str
    status: str  # issued | void
    reason: str | None = None


@dataclass(kw_only=True)
class RecordReferral:
    referral: Referral


@dataclass(kw_only=True)
class RecordCustomer:
    pass


Effect = SendEmail | RecordAsk | RecordReward | SettleReward | RecordReferral | RecordCustomer
