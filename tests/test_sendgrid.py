"""SendGrid delivery: the real client against a local server speaking the v3 contract, with faults.

Exactly once under retries and 429 storms (worker kills are in
test_devserver_integration.py); permanent failures reported, not retried.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.email import Company, EmailActivities, OutgoingEmail
from activities.sendgrid_provider import SendGridProvider, SendGridSettings
from mail.templates import TemplateRenderer
from plumbing.config import TEMPLATES_DIR
from storage.models import Base, Message
from tests.conftest import Harness, running_worker
from tests.fake_sendgrid import FakeSendGrid, Fault, error, rate_limited, server_error
from tests.outbox import messages
from workflows.model import SendEmailInput


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


def _provider(fake: FakeSendGrid, **overrides: object) -> SendGridProvider:
    settings = SendGridSettings(api_key=fake.api_key, host=fake.url, sender="Advocacy <advocacy@example.com>")
    return SendGridProvider(SendGridSettings(**{**settings.__dict__, **overrides}))


def _message(key: str = "c-1:review-1:invite", **overrides: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "idempotency_key": key,
        "to_email": "ada@analytical.example",
        "subject": "Would you share your experience?",
        "html": "<p>Hi</p>",
        "text": "Hi\n",
        "headers": {
            "List-Unsubscribe": "<https://x.example/u/t>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "customer_id": "c-1",
        "ask_id": "review-1",
        "program": "review",
        "template": "ask_review",
    }
    return OutgoingEmail(**{**values, **overrides})  # type: ignore[arg-type]


def test_a_message_carries_what_sendgrid_and_the_webhook_need(fake: FakeSendGrid) -> None:
    provider = _provider(fake, asm_group_id=4242, sandbox_mode=True)
    message_id = provider.send(_message())
    (body,) = fake.accepted
    assert message_id == body["_message_id"]
    personalization = body["personalizations"][0]
    assert personalization["to"] == [{"email": "ada@analytical.example"}]
    assert personalization["custom_args"] == {
        "idempotency_key": "c-1:review-1:invite",
        "customer_id": "c-1",
        "ask_id": "review-1",
        "program": "review",
    }
    assert body["from"] == {"email": "advocacy@example.com", "name": "Advocacy"}
    assert body["categories"] == ["advocacy", "review", "ask_review"]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["asm"] == {"group_id": 4242}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_dynamic_template_sends_the_same_variables(fake: FakeSendGrid) -> None:
    data = {"customer": {"first_name": "Ada"}, "links": {"activation": "https://x.example/a"}}
    _provider(fake).send(_message(provider_template_id="d-123", template_data=data, subject="", html="", text=""))
    (body,) = fake.accepted
    assert body["template_id"] == "d-123" and "content" not in body and "subject" not in body
    assert body["personalizations"][0]["dynamic_template_data"] == data


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (error("The from email does not contain a valid address.", "from.email"), "from.email: The from email"),
        (error("access forbidden", status=403), "(403): access forbidden"),
    ],
)
def test_permanent_errors_are_non_retryable_with_sendgrids_message(
    fake: FakeSendGrid, fault: Fault, needle: str
) -> None:
    fake.script(fault)
    with pytest.raises(ApplicationError) as err:
        _provider(fake).send(_message())
    assert err.value.non_retryable and needle in err.value.message and err.value.type == "SendGridRejected"


def test_wrong_key_and_oversized_messages_are_permanent(fake: FakeSendGrid) -> None:
    with pytest.raises(ApplicationError) as err:
        _provider(fake, api_key="SG.wrong").send(_message())
    assert err.value.non_retryable and "(401)" in err.value.message and "authorization grant" in err.value.message
    fake.max_bytes = 2000
    with pytest.raises(ApplicationError) as err:
        _provider(fake).send(_message(html="<p>" + "x" * 5000 + "</p>"))
    assert err.value.non_retryable and "(413)" in err.value.message
    assert fake.accepted == []


def test_429_retries_after_the_rate_limit_reset(fake: FakeSendGrid) -> None:
    fake.script(rate_limited(reset_in=30))
    with pytest.raises(ApplicationError) as err:
        _provider(fake).send(_message())
    assert not err.value.non_retryable and err.value.type == "SendGridRateLimited"
    assert err.value.next_retry_delay is not None
    assert timedelta(seconds=25) <= err.value.next_retry_delay <= timedelta(seconds=31)


def test_server_errors_and_timeouts_are_retryable(fake: FakeSendGrid) -> None:
    fake.script(server_error(), Fault(delay=2.0))
    with pytest.raises(ApplicationError) as err:
        _provider(fake).send(_message())
    assert not err.value.non_retryable and err.value.type == "SendGridServerError"
    with pytest.raises(ApplicationError) as err:
        _provider(fake, timeout_seconds=0.5).send(_message())
    assert not err.value.non_retryable and err.value.type == "SendGridUnavailable"
    fake.script(Fault(delay=0.3))  # slow but in time: accepted once
    assert _provider(fake).send(_message("c-1:review-1:reminder"))
    assert fake.keys()[-1] == "c-1:review-1:reminder"


# ---- through the journey, with Temporal's retries ------------------------------------------


@pytest.fixture
async def sendgrid_harness(
    env: WorkflowEnvironment, tmp_path: Path, sessions: sessionmaker[Session], fake: FakeSendGrid
) -> AsyncIterator[Harness]:
    async with running_worker(env, tmp_path, sessions, provider=_provider(fake, timeout_seconds=1.0)) as h:
        yield h


async def test_retries_deliver_exactly_once(sendgrid_harness: Harness, fake: FakeSendGrid) -> None:
    h, c = sendgrid_harness, sendgrid_harness.cid("retry")
    fake.script(server_error(), rate_limited(reset_in=1), server_error(), Fault(delay=0.3))
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert [(a.program, a.status) for a in state.asks] == [("review", "sent")]
    assert fake.keys() == [f"{c}:review-1:invite"]
    (row,) = messages(h.sessions, c)
    assert row.status == "sent" and row.provider == "sendgrid" and row.attempts == 4
    assert row.provider_message_id == fake.accepted[0]["_message_id"]


async def test_a_429_storm_delivers_every_message_exactly_once(sendgrid_harness: Harness, fake: FakeSendGrid) -> None:
    h = sendgrid_harness
    customers = [h.cid(f"storm{i}") for i in range(6)]
    fake.script(*(rate_limited(reset_in=1) for _ in range(15)))
    for c in customers:
        await h.profile(c, segment="enterprise")
        await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    assert sorted(fake.keys()) == sorted(f"{c}:review-1:invite" for c in customers)
    assert fake.requests >= 15 + len(customers)


async def test_a_permanent_failure_is_reported_not_retried(sendgrid_harness: Harness, fake: FakeSendGrid) -> None:
    h, c = sendgrid_harness, sendgrid_harness.cid("refused")
    fake.script(error("Does not contain a valid address.", "personalizations.0.to.0.email"))
    await h.profile(c, segment="enterprise")
    await h.send(c, "nps_response", {"score": 10})
    await h.sleep(days=3)
    state = await h.state(c)
    assert "Does not contain a valid address" in (state.last_error or "")
    assert state.asks[0].status == "cancelled" and "send failed" in (state.asks[0].error or "")
    assert fake.requests == 1 and fake.accepted == []
    await h.send(c, "usage_milestone", {"milestone": "still listening"})
    await h.sleep(hours=1)
    assert (await h.state(c)).events_applied == 3  # the journey carries on


def test_a_sendgrid_dynamic_template_replaces_the_local_one(fake: FakeSendGrid, tmp_path: Path) -> None:
    templates = Path(shutil.copytree(TEMPLATES_DIR, tmp_path / "templates"))
    (templates / "sendgrid.yaml").write_text("ask_review: d-review-en\nask_review.de: d-review-de\n")
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    email = EmailActivities(TemplateRenderer(templates), _provider(fake), sessions, Company())
    context = {"customer": {"name": "Ada Lovelace", "first_name": "Ada", "company": "AE"}, "referral_code": "ADA7K2QX"}
    ActivityEnvironment().run(
        email.send_email,
        SendEmailInput(
            idempotency_key="c-9:review-1:invite",
            customer_id="c-9",
            template="ask_review",
            to_email="ada@a.example",
            locale="de-AT",
            ask_id="review-1",
            program="review",
            context=context,
        ),
    )
    (body,) = fake.accepted
    assert body["template_id"] == "d-review-de"
    data = body["personalizations"][0]["dynamic_template_data"]
    assert set(data) == {"customer", "advocate", "ask", "links", "reward", "company"}
    assert data["customer"]["first_name"] == "Ada" and "utm_campaign=review" in data["links"]["activation"]
    with sessions() as s:
        row = s.scalars(select(Message)).one()
    assert (row.provider_template_id, row.status) == ("d-review-de", "sent")
    engine.dispose()
