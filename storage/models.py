"""SQLAlchemy 2 typed models: what the journeys did, readable by people and reports.

Every row a side effect writes carries a unique key derived from journey
state (customer + ask + step), so a retried activity finds its earlier effect.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Index, MetaData, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from workflows.events import TEXT_LIMITS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


Timestamp = DateTime(timezone=True)


class Customer(Base):
    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["email"]))
    name: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["name"]))
    company: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["company"]))
    timezone: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["timezone"]))
    locale: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["locale"]))
    segment: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["segment"]))
    plan: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["plan"]))
    referral_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    # A revoked code still redirects, without attribution.
    referral_revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Event(Base):
    """Every event accepted from a backend system, once (unique on event_id).

    `delivery` makes the table an outbox for the journeys: `pending` until the
    signal-with-start succeeded, then `delivered` (or `refused`: the journey had
    ended); `recorded` for calls kept but applied to no journey. Pending events
    are sent again by the relay (storage.relay), so a Temporal outage loses none.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_delivery_received_at", "delivery", "received_at"),)

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    delivery: Mapped[str] = mapped_column(String(16), server_default="delivered")


class AskRow(Base):
    __tablename__ = "asks"
    __table_args__ = (UniqueConstraint("customer_id", "ask_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    ask_id: Mapped[str] = mapped_column(String(64))
    program: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    reminded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Message(Base):
    """The outbox: one row per email, unique on its idempotency key."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    ask_id: Mapped[str | None] = mapped_column(String(64))
    program: Mapped[str | None] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    to_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # What exactly was used: sha256 over every template file (parts, layout, partials) and their names;
    # for a SendGrid dynamic template, its id instead.
    template_hash: Mapped[str | None] = mapped_column(String(64))
    template_sources: Mapped[str | None] = mapped_column(Text)
    provider_template_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # rendered | sending | sent | failed | suppressed
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    provider: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # From the provider's event webhook.
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    opened_at: Mapped[datetime | None] = mapped_column(Timestamp)
    clicked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    bounced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_event: Mapped[str | None] = mapped_column(String(32))


class RewardRow(Base):
    """The rewards ledger. pending -> approved (after the hold) -> issued, or void."""

    __tablename__ = "rewards"
    __table_args__ = (UniqueConstraint("customer_id", "reward_id"), Index("ix_rewards_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reward_id: Mapped[str] = mapped_column(String(128))
    program: Mapped[str] = mapped_column(String(32))
    beneficiary: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    referral_id: Mapped[str | None] = mapped_column(String(64))
    hold_until: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    approved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    issued_at: Mapped[datetime | None] = mapped_column(Timestamp)
    voided_at: Mapped[datetime | None] = mapped_column(Timestamp)
    void_reason: Mapped[str | None] = mapped_column(Text)


# The referral form's optional context for sales (api.advocate), bounded like the event fields.
REFERRAL_NOTE_LIMITS = {"role": 200, "note": 1000}


class ReferralRow(Base):
    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("customer_id", "referral_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    referral_id: Mapped[str] = mapped_column(String(64))
    referral_code: Mapped[str | None] = mapped_column(String(32))
    referee_email: Mapped[str] = mapped_column(String(TEXT_LIMITS["referee_email"]), index=True)
    referee_name: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["referee_name"]))
    referee_company: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["referee_company"]))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    # From the advocate's referral form, for sales: kept here only (the journey need not carry them).
    referee_role: Mapped[str | None] = mapped_column(String(REFERRAL_NOTE_LIMITS["role"]))
    note_for_sales: Mapped[str | None] = mapped_column(String(REFERRAL_NOTE_LIMITS["note"]))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class ReferralClaim(Base):
    """A referee's mailbox (workflows.addresses.address_key), claimed by the first advocate to refer it: the
    unique key holds however many advocates submit the same person at once."""

    __tablename__ = "referral_claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    referee_key: Mapped[str] = mapped_column(String(320), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(Timestamp)


class ReferralClick(Base):
    """A click on an advocate's referral link, counted once per visitor per day."""

    __tablename__ = "referral_clicks"
    __table_args__ = (UniqueConstraint("code", "visitor", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    visitor: Mapped[str] = mapped_column(String(64))  # a hash, never the raw cookie or address
    day: Mapped[str] = mapped_column(String(10))
    clicked_at: Mapped[datetime] = mapped_column(Timestamp)


class CrmDeal(Base):
    """A CRM deal update, once per deal and stage (the CRM may resend)."""

    __tablename__ = "crm_deals"
    __table_args__ = (UniqueConstraint("deal_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    referral_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(Timestamp)


class WebhookEvent(Base):
    """A provider event, once: keyed by our own fields (SendGrid's sg_event_id can change between retries)."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class WebhookReceipt(Base):
    """Signed webhook posts already accepted: the same timestamp and body again is a replay
    (`signature_hash` holds sha256 of both, api/webhooks.py `_receipt_key`, whatever the signature encoding)."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    signature_hash: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp)


class Suppression(Base):
    """An address or a customer no email may reach, whatever a journey's state says: unsubscribes,
    opt-outs, bounces and spam reports. Erasure blanks `email` and keeps `email_hash`, so it still holds."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("scope", "key", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # customer | address
    # The customer id (scope customer) or the sha256 of the normalised address (scope address).
    key: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(TEXT_LIMITS["email"]))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


# The story form's fields and their bounds (api.advocate): a few sentences each, no essays.
STORY_LIMITS = {"challenge": 2000, "change": 2000, "results": 2000, "quote": 1000, "interview_time": 200}


class Story(Base):
    """What an advocate told us on a case-study ask's page: one row per ask, a second submission updates it."""

    __tablename__ = "stories"
    __table_args__ = (UniqueConstraint("customer_id", "ask_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    ask_id: Mapped[str] = mapped_column(String(64))
    challenge: Mapped[str] = mapped_column(String(STORY_LIMITS["challenge"]))
    change: Mapped[str] = mapped_column(String(STORY_LIMITS["change"]))
    results: Mapped[str] = mapped_column(String(STORY_LIMITS["results"]))
    quote: Mapped[str] = mapped_column(String(STORY_LIMITS["quote"]))
    may_name: Mapped[bool]  # permission to use their name and logo
    interview_time: Mapped[str] = mapped_column(String(STORY_LIMITS["interview_time"]))
    submissions: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
