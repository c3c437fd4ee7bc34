"""Activities against real databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set).

Each side-effecting activity run twice leaves one effect; a crash between the
effect and the activity's completion does not duplicate it on retry.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.email as email_module
from activities.email import Company, EmailActivities, LocalProvider
from activities.records import RecordActivities
from mail.templates import TemplateRenderer
from plumbing.config import TEMPLATES_DIR
from storage.db import alembic_config, make_engine
from storage.models import Message, ReferralRow, RewardRow, Suppression
from storage.suppressions import suppress
from tests.conftest import DATABASES, PG_URL, database_url
from workflows.model import (
    Profile,
    RecordCustomerInput,
    RecordReferralInput,
    RecordRewardInput,
    Referral,
    Reward,
    SendEmailInput,
    SettleRewardInput,
)


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_upgrade_check_downgrade(kind: str, tmp_path: Path) -> None:
    cfg = alembic_config(database_url(kind, tmp_path))
    command.upgrade(cfg, "head")
    command.check(cfg)  # the models and the migrations agree
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")


def _email(db: sessionmaker[Session], outbox: Path) -> EmailActivities:
    return EmailActivities(
        TemplateRenderer(TEMPLATES_DIR), LocalProvider(outbox), db, Company(postal_address="1 Main St")
    )


def _input(customer: str, template: str = "ask_review") -> SendEmailInput:
    return SendEmailInput(
        idempotency_key=f"{customer}:review-1:invite",
        customer_id=customer,
        template=template,
        to_email="ada@acme.co",
        ask_id="review-1",
        program="review",
        context={"customer": {"name": "Ada <b>L</b>", "first_name": "<script>x</script>", "company": "Acme", "customer_id": customer, "email": "ada@acme.co"},
                 "referral_code": "ABCD2345", "link": "https://g2.example/review"},
    )  # fmt: skip


def _deliveries(outbox: Path) -> list[str]:
    log = outbox / "deliveries.jsonl"
    return log.read_text().splitlines() if log.exists() else []


def test_send_email_twice_sends_once(db: sessionmaker[Session], tmp_path: Path) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    activities = _email(db, tmp_path / "outbox")
    first = ActivityEnvironment().run(activities.send_email, _input(customer))
    second = ActivityEnvironment().run(activities.send_email, _input(customer))
    assert not first.already_sent and second.already_sent
    assert second.provider_message_id == first.provider_message_id
    assert len(_deliveries(tmp_path / "outbox")) == 1
    with db() as s:
        rows = s.scalars(select(Message).where(Message.customer_id == customer)).all()
    assert len(rows) == 1 and rows[0].status == "sent"
    html = rows[0].html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html  # customer text is escaped
    assert "utm_source=advocacy" in html and "utm_content=review-1" in html
    eml = next((tmp_path / "outbox").glob("*.eml")).read_text()
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in eml


def test_crash_after_marking_sent_does_not_resend(
    db: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    activities = _email(db, tmp_path / "outbox")

    def crash(point: str) -> None:
        if point == "crash-after-send":
            raise SystemExit("worker killed")  # the process dies before the activity completes

    monkeypatch.setattr(email_module, "_fault", crash)
    with pytest.raises(SystemExit):
        ActivityEnvironment().run(activities.send_email, _input(customer))
    monkeypatch.setattr(email_module, "_fault", lambda point: None)
    retry = ActivityEnvironment().run(activities.send_email, _input(customer))  # Temporal's retry
    assert retry.already_sent
    assert len(_deliveries(tmp_path / "outbox")) == 1


def test_crash_before_marking_redelivers_under_the_same_key(
    db: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented window: the provider accepted, the row was not marked. Local delivery is keyed: one file."""
    customer = f"c-{uuid.uuid4().hex[:8]}"
    outbox = tmp_path / "outbox"
    activities = _email(db, outbox)
    monkeypatch.setattr(
        email_module,
        "_fault",
        lambda point: (_ for _ in ()).throw(SystemExit()) if point == "crash-before-mark" else None,
    )
    with pytest.raises(SystemExit):
        ActivityEnvironment().run(activities.send_email, _input(customer))
    monkeypatch.setattr(email_module, "_fault", lambda point: None)
    ActivityEnvironment().run(activities.send_email, _input(customer))
    assert len(list(outbox.glob("*.eml"))) == 1
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.customer_id == customer)) == 1


def test_broken_template_fails_without_retry(db: sessionmaker[Session], tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    for part in ("subject", "txt"):
        (tmp_path / "t" / f"bad.{part}.j2").write_text("ok")
    (tmp_path / "t" / "bad.html.j2").write_text("{{ customer.missing_field }}")
    activities = EmailActivities(
        TemplateRenderer(tmp_path / "t"), LocalProvider(tmp_path / "o"), db, Company(public_base_url="http://x")
    )
    with pytest.raises(ApplicationError) as err:
        ActivityEnvironment().run(activities.send_email, _input(f"c-{uuid.uuid4().hex[:8]}", "bad"))
    assert err.value.non_retryable and "missing_field" in str(err.value)


def test_ledger_is_exactly_once_and_one_way(db: sessionmaker[Session]) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    records = RecordActivities(db)
    reward = Reward(reward_id="referral-r1", program="referral", amount=600.0, currency="USD", status="pending", kind="cash", referral_id="r1",
                    created_at="2026-11-25T10:00:00Z", hold_until="2026-12-25T10:00:00Z")  # fmt: skip
    env = ActivityEnvironment()
    env.run(records.record_reward, RecordRewardInput(customer_id=customer, reward=reward))
    env.run(records.record_reward, RecordRewardInput(customer_id=customer, reward=reward))
    env.run(records.settle_reward, SettleRewardInput(customer_id=customer, reward_id="referral-r1", status="issued"))
    with db() as s:
        row = s.scalars(select(RewardRow).where(RewardRow.customer_id == customer)).one()
        issued_at = row.issued_at
    env.run(records.settle_reward, SettleRewardInput(customer_id=customer, reward_id="referral-r1", status="issued"))
    with db() as s:
        row = s.scalars(select(RewardRow).where(RewardRow.customer_id == customer)).one()
    assert row.status == "issued" and row.issued_at == issued_at and row.approved_at is not None
    assert float(row.amount) == 600.0
    with pytest.raises(ApplicationError) as err:
        env.run(
            records.settle_reward,
            SettleRewardInput(customer_id=customer, reward_id="referral-r1", status="void", reason="refund"),
        )
    assert err.value.non_retryable


def test_referral_upsert_on_natural_key(db: sessionmaker[Session]) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    records = RecordActivities(db)
    referral = Referral(
        referral_id="ref-1", referee_email="pat@p.co", status="submitted", submitted_at="2026-11-25T10:00:00Z"
    )
    env = ActivityEnvironment()
    env.run(
        records.record_referral, RecordReferralInput(customer_id=customer, referral=referral, referral_code="CODE1234")
    )
    referral.status, referral.amount = "won", 12000.0
    env.run(
        records.record_referral, RecordReferralInput(customer_id=customer, referral=referral, referral_code="CODE1234")
    )
    with db() as s:
        rows = s.scalars(select(ReferralRow).where(ReferralRow.customer_id == customer)).all()
    assert [(r.status, float(r.amount or 0)) for r in rows] == [("won", 12000.0)]


@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL unset: SQLite does not enforce column lengths")
def test_a_row_the_database_refuses_fails_for_good_naming_the_problem(tmp_path: Path) -> None:
    """A value too long for its column (a journey that kept it before the bounds) must not retry for ever."""
    command.upgrade(alembic_config(str(PG_URL)), "head")
    engine = make_engine(str(PG_URL))
    records = RecordActivities(sessionmaker(engine, expire_on_commit=False))
    customer = f"c-{uuid.uuid4().hex[:8]}"
    profile = Profile(email="ada@acme.co", name="n" * 201, company="Acme")
    try:
        with pytest.raises(ApplicationError) as err:
            records.record_customer(RecordCustomerInput(customer_id=customer, profile=profile))
        assert err.value.non_retryable and err.value.type == "DataError"
        assert "too long" in err.value.message and "customers" in err.value.message
    finally:
        engine.dispose()


def test_a_suppressed_customer_or_address_is_never_sent_whatever_the_journey_asks(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    """The journey's state can be lost or stale; the suppression list is checked by every send."""
    unsubscribed, bounced, other = (f"c-{uuid.uuid4().hex[:8]}" for _ in range(3))
    with db.begin() as session:
        suppress(session, reason="unsubscribed", source="unsubscribe link", customer_id=unsubscribed)
        suppress(session, reason="unsubscribed", source="unsubscribe link", customer_id=unsubscribed)  # once
        suppress(session, reason="bounce", source="sendgrid webhook", customer_id=bounced, email="Gone@Acme.co ")
    activities = _email(db, tmp_path / "outbox")
    for customer, why in ((unsubscribed, "unsubscribed"), (other, "bounce")):
        # `other` shares the bounced address (ada@acme.co): the address is suppressed, whoever it belongs to.
        step = _input(customer)
        if customer == other:
            step.to_email = "gone@acme.co"
        with pytest.raises(ApplicationError) as err:
            ActivityEnvironment().run(activities.send_email, step)
        assert err.value.non_retryable and err.value.type == "Suppressed"
        assert why in err.value.message
    assert _deliveries(tmp_path / "outbox") == []
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 2
        assert s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent")) == 0
    # The team's own notification about a customer who unsubscribed still goes to the team.
    team = SendEmailInput(idempotency_key=f"{unsubscribed}:champion:team", customer_id=unsubscribed,
                          template="team_champion", to_email="advocacy-team@example.com",
                          context={"customer": {"name": "Ada", "company": "Acme", "customer_id": unsubscribed}, "score": 90,
                                   "completed": {}})  # fmt: skip
    assert not ActivityEnvironment().run(activities.send_email, team).already_sent
    assert len(_deliveries(tmp_path / "outbox")) == 1
