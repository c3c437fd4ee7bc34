"""Upserts of journey facts on their natural keys: customers, asks, the rewards ledger, referrals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.data_errors import bad_data_is_final
from storage.models import AskRow, Customer, ReferralRow, RewardRow
from workflows.events import parse_timestamp
from workflows.model import (
    RecordAskInput,
    RecordCustomerInput,
    RecordReferralInput,
    RecordRewardInput,
    SettleRewardInput,
)


def _count_reward(status: str, amount: float, currency: str) -> None:
    meter = activity.metric_meter()
    meter.create_counter("advocacy_rewards", "ledger entries by status").add(1, {"status": status})
    meter.create_counter("advocacy_reward_amount_cents", "ledger amounts by status", "cents").add(
        round(amount * 100), {"status": status, "currency": currency}
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ts(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value, "timestamp")


class RecordActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="record_customer")
    @bad_data_is_final
    def record_customer(self, input: RecordCustomerInput) -> None:
        profile, now = input.profile, _now()
        with self.sessions.begin() as session:
            row = session.get(Customer, input.customer_id)
            if row is None:
                row = Customer(customer_id=input.customer_id, created_at=now)
                session.add(row)
            row.email, row.name, row.company = profile.email, profile.name, profile.company
            row.timezone, row.locale, row.segment, row.plan = (
                profile.timezone,
                profile.locale,
                profile.segment,
                profile.plan,
            )
            row.referral_code = input.referral_code
            row.updated_at = now

    @activity.defn(name="record_ask")
    @bad_data_is_final
    def record_ask(self, input: RecordAskInput) -> None:
        ask, now = input.ask, _now()
        with self.sessions.begin() as session:
            row = session.scalar(
                select(AskRow).where(AskRow.customer_id == input.customer_id, AskRow.ask_id == ask.ask_id)
            )
            if row is None:
                row = AskRow(customer_id=input.customer_id, ask_id=ask.ask_id, program=ask.program)
                session.add(row)
            row.status = ask.status
            row.created_at = parse_timestamp(ask.created_at, "created_at")
            row.sent_at, row.reminded_at = _ts(ask.sent_at), _ts(ask.reminded_at)
            row.completed_at, row.closed_at = _ts(ask.completed_at), _ts(ask.closed_at)
            row.error, row.updated_at = ask.error, now

    @activity.defn(name="record_reward")
    @bad_data_is_final
    def record_reward(self, input: RecordRewardInput) -> None:
        """Create the ledger row once; a retry finds it and changes nothing."""
        reward = input.reward
        with self.sessions.begin() as session:
            existing = session.scalar(
                select(RewardRow).where(
                    RewardRow.customer_id == input.customer_id, RewardRow.reward_id == reward.reward_id
                )
            )
            if existing is not None:
                return
            session.add(
                RewardRow(
                    customer_id=input.customer_id,
                    reward_id=reward.reward_id,
                    program=reward.program,
                    beneficiary=reward.beneficiary,
                    kind=reward.kind,
                    amount=Decimal(str(reward.amount)),
                    currency=reward.currency,
                    status="pending",
                    referral_id=reward.referral_id,
                    hold_until=_ts(reward.hold_until),
                    created_at=_ts(reward.created_at) or _now(),
                )
            )
        _count_reward("pending", reward.amount, reward.currency)

    @activity.defn(name="settle_reward")
    @bad_data_is_final
    def settle_reward(self, input: SettleRewardInput) -> None:
        """pending -> approved -> issued, or pending -> void; repeating a transition is a no-op."""
        now = _now()
        with self.sessions.begin() as session:
            row = session.scalar(
                select(RewardRow)
                .where(RewardRow.customer_id == input.customer_id, RewardRow.reward_id == input.reward_id)
                .with_for_update()
            )
            if row is None:
                raise ApplicationError(f"reward {input.reward_id} is not in the ledger yet")  # retried
            if row.status == input.status:
                return
            if input.status == "issued":
                if row.status == "void":
                    raise ApplicationError(
                        f"reward {input.reward_id} was voided ({row.void_reason}); it cannot be issued",
                        type="LedgerConflict",
                        non_retryable=True,
                    )
                row.approved_at = row.approved_at or now
                row.issued_at, row.status = now, "issued"
            elif input.status == "void":
                if row.status == "issued":
                    raise ApplicationError(
                        f"reward {input.reward_id} was already issued; it cannot be voided",
                        type="LedgerConflict",
                        non_retryable=True,
                    )
                row.voided_at, row.void_reason, row.status = now, input.reason, "void"
            else:
                raise ApplicationError(
                    f"unknown ledger status {input.status!r}", type="LedgerConflict", non_retryable=True
                )
            amount, currency = float(row.amount), row.currency
        _count_reward(input.status, amount, currency)

    @activity.defn(name="record_referral")
    @bad_data_is_final
    def record_referral(self, input: RecordReferralInput) -> None:
        referral, now = input.referral, _now()
        with self.sessions.begin() as session:
            row = session.scalar(
                select(ReferralRow).where(
                    ReferralRow.customer_id == input.customer_id, ReferralRow.referral_id == referral.referral_id
                )
            )
            if row is None:
                row = ReferralRow(
                    customer_id=input.customer_id,
                    referral_id=referral.referral_id,
                    referee_email=referral.referee_email,
                    created_at=_ts(referral.submitted_at) or now,
                )
                session.add(row)
            row.referral_code = input.referral_code
            row.referee_name, row.referee_company = referral.referee_name, referral.referee_company
            row.status = referral.status
            row.amount = None if referral.amount is None else Decimal(str(referral.amount))
            row.currency, row.updated_at = referral.currency, now

    def all(self) -> list[Callable[..., None]]:
        return [self.record_customer, self.record_ask, self.record_reward, self.settle_reward, self.record_referral]
