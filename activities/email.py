"""Email: render a template, write the outbox row under its unique key, send, mark sent.

Exactly once, with the outbox as the guard (no provider here has an
idempotency key): the row is written under the step's unique key before
anything is sent; it is marked `sending` (attempt counted) just before the
provider call and `sent`, with the provider's message id, in a one-row commit
right after it. A retry that finds the row sent returns it without sending.

The one window left is between the provider accepting and that commit: a
process killed in between, or a response lost to a client timeout. For the
local provider it is closed (a repeated delivery writes the same file). For
SendGrid it is narrowed to the commit that directly follows the 202
(no other work in between), and to timeouts well above SendGrid's latency
(`SENDGRID_TIMEOUT_SECONDS`, 20 s). A retry after such a window sends again;
the row shows it (`attempts` > 1), and the custom_args on every message carry
the idempotency key, so the event webhook can tell two deliveries of one key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.data_errors import bad_data_is_final
from mail.links import links_for
from mail.templates import RenderedEmail, TemplateFailure, TemplateRenderer
from storage.models import AskRow, Message, Story
from storage.suppressions import CUSTOMER, TEAM_TEMPLATE_PREFIX, suppression_for
from workflows.model import SendEmailInput, SendEmailResult


@dataclass
class OutgoingEmail:
    idempotency_key: str
    to_email: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    customer_id: str = ""
    ask_id: str | None = None
    program: str | None = None
    template: str = ""
    # A SendGrid dynamic template renders on SendGrid's side from these variables.
    provider_template_id: str | None = None
    template_data: dict[str, Any] = field(default_factory=dict)


class EmailProvider(Protocol):
    name: str

    def send(self, message: OutgoingEmail) -> str:
        """Deliver and return the provider's message id. Raise ApplicationError(non_retryable) when permanent."""
        ...


def outbox_file_name(idempotency_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", idempotency_key)[:120] + ".eml"


class LocalProvider:
    """Writes each message as an .eml file a person can open, plus one line per delivery."""

    name = "local"

    def __init__(self, directory: Path, sender: str = "Advocacy Team <advocacy@example.com>") -> None:
        self.directory = directory
        self.sender = sender
        self._lock = threading.Lock()

    def send(self, message: OutgoingEmail) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:16]
        mime = EmailMessage()
        mime["From"] = self.sender
        mime["To"] = message.to_email
        mime["Subject"] = message.subject
        mime["Message-ID"] = f"<{digest}@advocacy.local>"
        for header, value in message.headers.items():
            mime[header] = value
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        path = self.directory / outbox_file_name(message.idempotency_key)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(mime))
        os.replace(tmp, path)  # same key, same file: a repeated delivery overwrites, never duplicates
        with self._lock, (self.directory / "deliveries.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"key": message.idempotency_key, "to": message.to_email, "file": path.name}) + "\n")
        return f"local-{digest}"


@dataclass(frozen=True)
class Company:
    """Who sends: what templates see as `company`, and where links point."""

    name: str = "Example Inc."
    postal_address: str = "Example Inc., 1 Market St, San Francisco, CA"
    public_base_url: str = "http://localhost:8000"

    def variables(self) -> dict[str, str]:
        return {"name": self.name, "postal_address": self.postal_address, "website": self.public_base_url}


def template_variables(input: SendEmailInput, company: Company) -> dict[str, Any]:
    """The documented variables (templates/README.md) from what the journey sent, and nothing else."""
    ctx = input.context
    customer = dict(ctx.get("customer") or {})
    customer.setdefault("customer_id", input.customer_id)
    customer["locale"] = input.locale
    program = input.program or ctx.get("program")
    referral_code = ctx.get("referral_code")
    return {
        "customer": customer,
        "advocate": {
            "referral_code": referral_code,
            "score": ctx.get("score"),
            "completed": dict(ctx.get("completed") or {}),
        },
        "ask": {"id": input.ask_id, "program": program} if program else None,
        "links": links_for(
            company.public_base_url, input.customer_id, program, input.ask_id, referral_code, ctx.get("link")
        ),
        "reward": ctx.get("reward"),
        "story": ctx.get("story"),
        "company": company.variables(),
    }


STORY_TEMPLATE = "team_story"


def story_variables(story: Story) -> dict[str, Any]:
    """What `team_story` sees as `story` (templates/README.md)."""
    return {"challenge": story.challenge, "change": story.change, "results": story.results, "quote": story.quote,
            "may_name": story.may_name, "interview_time": story.interview_time, "submissions": story.submissions}  # fmt: skip


def _count(name: str, description: str, **attributes: str) -> None:
    activity.metric_meter().create_counter(name, description).add(1, attributes)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fault(point: str) -> None:
    """Crash on purpose at a named point, once (tests prove a retry does not duplicate)."""
    if os.environ.get("ADVOCACY_FAULT") != point:
        return
    marker = Path(os.environ.get("ADVOCACY_FAULT_MARKER", "var/fault.marker"))
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(point)
    os._exit(137)


class EmailActivities:
    def __init__(
        self,
        renderer: TemplateRenderer,
        provider: EmailProvider,
        sessions: sessionmaker[Session],
        company: Company | None = None,
    ) -> None:
        self.renderer = renderer
        self.provider = provider
        self.sessions = sessions
        self.company = company or Company()

    @activity.defn(name="send_email")
    @bad_data_is_final
    def send_email(self, input: SendEmailInput) -> SendEmailResult:
        with self.sessions.begin() as session:
            row = session.scalar(select(Message).where(Message.idempotency_key == input.idempotency_key))
            if row is not None and row.status == "sent":
                assert row.sent_at is not None and row.provider_message_id is not None
                return SendEmailResult(
                    message_id=str(row.id),
                    provider_message_id=row.provider_message_id,
                    sent_at=_iso(row.sent_at),
                    already_sent=True,
                )
        variables = template_variables(input, self.company)
        if input.template == STORY_TEMPLATE:
            variables["story"] = self._story(input)
        if row is None:
            row = self._write_outbox(input, variables)
        headers = {}
        if input.ask_id and not input.template.startswith(TEAM_TEMPLATE_PREFIX):
            # RFC 8058 one-click unsubscribe on every ask and reminder, besides the footer link.
            headers = {
                "List-Unsubscribe": f"<{variables['links']['unsubscribe']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        with self.sessions.begin() as session:
            sending = session.get(Message, row.id)
            assert sending is not None
            # Checked in the transaction that commits to sending: an unsubscribe recorded before it holds.
            blocked = suppression_for(session, customer_id=input.customer_id, to_email=row.to_email,
                                      template=input.template)  # fmt: skip
            if blocked is None:
                sending.status, sending.attempts = "sending", sending.attempts + 1
            else:
                who = f"customer {input.customer_id}" if blocked.scope == CUSTOMER else "the address"
                refusal = f"not sent: {who} is suppressed ({blocked.reason}, from {blocked.source})"
                sending.status, sending.error = "suppressed", refusal
        if blocked is not None:
            _count("advocacy_emails_suppressed", "sends refused by the suppression list", reason=blocked.reason)
            raise ApplicationError(refusal, type="Suppressed", non_retryable=True)
        _fault("crash-before-send")
        provider_id = self._send(
            OutgoingEmail(
                idempotency_key=input.idempotency_key,
                to_email=row.to_email,
                subject=row.subject,
                html=row.html,
                text=row.text,
                headers=headers,
                customer_id=input.customer_id,
                ask_id=input.ask_id,
                program=input.program,
                template=input.template,
                provider_template_id=row.provider_template_id,
                template_data=_dynamic_data(variables) if row.provider_template_id else {},
            )
        )
        _count("advocacy_emails_sent", "emails sent", template=input.template)
        _fault("crash-before-mark")
        sent_at = _now()
        with self.sessions.begin() as session:
            fresh = session.get(Message, row.id)
            assert fresh is not None
            fresh.status, fresh.provider_message_id, fresh.sent_at = "sent", provider_id, sent_at
            if input.ask_id and input.program and input.idempotency_key.endswith((":invite", ":reminder")):
                self._mark_ask(session, input, sent_at)
        _fault("crash-after-send")
        return SendEmailResult(message_id=str(row.id), provider_message_id=provider_id, sent_at=_iso(sent_at))

    def _story(self, input: SendEmailInput) -> dict[str, Any]:
        """The story as stored by the advocate's page (never carried in the journey's history)."""
        with self.sessions() as session:
            story = session.scalar(
                select(Story).where(Story.customer_id == input.customer_id, Story.ask_id == input.ask_id)
            )
        if story is None:
            raise ApplicationError(
                f"ask_id: no story stored for {input.customer_id} ask {input.ask_id}",
                type="NoStory",
                non_retryable=True,
            )
        return story_variables(story)

    def _send(self, message: OutgoingEmail) -> str:
        try:
            return self.provider.send(message)
        except ApplicationError as err:
            if err.non_retryable:
                _count("advocacy_email_send_failures", "sends that failed for good", reason=err.type or "error")
            raise

    def _write_outbox(self, input: SendEmailInput, variables: dict[str, Any]) -> Message:
        dynamic = self._dynamic_template(input.template, input.locale)
        if dynamic:
            rendered = RenderedEmail(
                name=input.template,
                locale=input.locale,
                subject=f"(SendGrid dynamic template {dynamic})",
                html="",
                text=json.dumps(variables, sort_keys=True, default=str),
                sources_hash=hashlib.sha256(dynamic.encode()).hexdigest(),
            )
        else:
            try:
                rendered = self.renderer.render(input.template, input.locale, variables)
            except TemplateFailure as err:
                # A broken template will not fix itself on retry: fail this step, visibly; the journey goes on.
                _count("advocacy_template_render_errors", "templates that failed to render", template=input.template)
                raise ApplicationError(
                    f"template {input.template!r}: {err}", type="TemplateError", non_retryable=True
                ) from None
        for warning in rendered.warnings:
            activity.logger.warning("template %s: %s", input.template, warning)
        row = Message(
            idempotency_key=input.idempotency_key,
            customer_id=input.customer_id,
            ask_id=input.ask_id,
            program=input.program,
            template=input.template,
            locale=rendered.locale,
            template_hash=rendered.sources_hash,
            template_sources=",".join(rendered.sources) or None,
            provider_template_id=dynamic,
            to_email=input.to_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            status="rendered",
            attempts=0,
            provider=self.provider.name,
            created_at=_now(),
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            # A concurrent attempt wrote it first: use that row.
            with self.sessions.begin() as session:
                existing = session.scalar(select(Message).where(Message.idempotency_key == input.idempotency_key))
                assert existing is not None
                return existing
        return row

    def _dynamic_template(self, name: str, locale: str) -> str | None:
        """A SendGrid dynamic template id from templates/sendgrid.yaml (NAME or NAME.locale), SendGrid only."""
        path = self.renderer.directory / "sendgrid.yaml"
        if self.provider.name != "sendgrid" or not path.is_file():
            return None
        ids = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key in (f"{name}.{locale}", f"{name}.{locale.split('-')[0]}", name):
            if isinstance(ids.get(key), str):
                return str(ids[key])
        return None

    def _mark_ask(self, session: Session, input: SendEmailInput, sent_at: datetime) -> None:
        assert input.ask_id is not None and input.program is not None
        ask = session.scalar(
            select(AskRow).where(AskRow.customer_id == input.customer_id, AskRow.ask_id == input.ask_id)
        )
        if ask is None:
            ask = AskRow(
                customer_id=input.customer_id,
                ask_id=input.ask_id,
                program=input.program,
                status="sent",
                created_at=sent_at,
                updated_at=sent_at,
            )
            session.add(ask)
        if input.idempotency_key.endswith(":reminder"):
            ask.status, ask.reminded_at = "reminded", sent_at
        else:
            ask.status, ask.sent_at = "sent", sent_at
        ask.updated_at = sent_at


def _dynamic_data(variables: dict[str, Any]) -> dict[str, Any]:
    """What a SendGrid dynamic template receives: the documented variables, `story` only where there is one."""
    return {k: v for k, v in variables.items() if k != "story" or v is not None}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
