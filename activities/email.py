"""Email: render a template, write the outbox row under its unique key, send, mark sent.

A retried activity finds the row: if it is marked sent nothing is sent again.
The remaining window (the provider accepted, the process died before the row
was marked) is closed for the local provider by delivering under the same key
(the same file); remote providers narrow it by marking right after the call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.links import links_for
from storage.models import AskRow, Message
from workflows.model import SendEmailInput, SendEmailResult


@dataclass
class RenderedEmail:
    subject: str
    html: str
    text: str
    locale: str


class TemplateRenderer:
    """Sandboxed Jinja2, HTML autoescape, StrictUndefined; template edits apply at the next send."""

    def __init__(self, directory: Path) -> None:
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            auto_reload=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def _pick(self, name: str, part: str, locale: str) -> tuple[str, str]:
        for loc in dict.fromkeys((locale, locale.split("-")[0], "en")):
            candidate = f"{name}.{loc}.{part}.j2" if loc != "en" else f"{name}.{part}.j2"
            try:
                self.env.get_template(candidate)
                return candidate, loc
            except jinja2.TemplateNotFound:
                continue
        raise jinja2.TemplateNotFound(f"{name}.{part}.j2")

    def render(self, name: str, locale: str, context: dict[str, Any]) -> RenderedEmail:
        html_name, used = self._pick(name, "html", locale)
        parts = {}
        for part in ("subject", "txt"):
            parts[part] = self.env.get_template(self._pick(name, part, used)[0]).render(context)
        html = self.env.get_template(html_name).render(context)
        return RenderedEmail(
            subject=" ".join(parts["subject"].split()), html=html, text=parts["txt"].strip() + "\n", locale=used
        )


@dataclass
class OutgoingEmail:
    idempotency_key: str
    to_email: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]


class EmailProvider(Protocol):
    name: str

    def send(self, message: OutgoingEmail) -> str:
        """Deliver and return the provider's message id. Raise ApplicationError(non_retryable) when permanent."""
        ...


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
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", message.idempotency_key)[:120]
        path = self.directory / f"{slug}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(mime))
        os.replace(tmp, path)  # same key, same file: a repeated delivery overwrites, never duplicates
        with self._lock, (self.directory / "deliveries.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"key": message.idempotency_key, "to": message.to_email, "file": path.name}) + "\n")
        return f"local-{digest}"


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
        public_base_url: str,
        postal_address: str = "",
    ) -> None:
        self.renderer = renderer
        self.provider = provider
        self.sessions = sessions
        self.public_base_url = public_base_url
        self.postal_address = postal_address

    def _context(self, input: SendEmailInput) -> dict[str, Any]:
        ctx = dict(input.context)
        ctx["links"] = links_for(
            self.public_base_url,
            input.customer_id,
            input.program,
            input.ask_id,
            ctx.get("referral_code"),
            ctx.pop("link", None),
        )
        ctx.setdefault("program", input.program)
        ctx.setdefault("ask_id", input.ask_id)
        ctx["company_postal_address"] = self.postal_address
        return ctx

    @activity.defn(name="send_email")
    def send_email(self, input: SendEmailInput) -> SendEmailResult:
        with self.sessions.begin() as session:
            row = session.scalar(select(Message).where(Message.idempotency_key == input.idempotency_key))
            if row is not None and row.status == "sent":
                assert row.sent_at is not None and row.provider_message_id is not None
                return SendEmailResult(str(row.id), row.provider_message_id, _iso(row.sent_at), already_sent=True)
        if row is None:
            row = self._write_outbox(input)
        headers = {}
        if input.ask_id:
            unsubscribe = self._context(input)["links"]["unsubscribe"]
            headers = {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        provider_id = self.provider.send(
            OutgoingEmail(input.idempotency_key, row.to_email, row.subject, row.html, row.text, headers)
        )
        _fault("crash-before-mark")
        sent_at = _now()
        with self.sessions.begin() as session:
            fresh = session.get(Message, row.id)
            assert fresh is not None
            fresh.status, fresh.provider_message_id, fresh.sent_at = "sent", provider_id, sent_at
            if input.ask_id and input.program and input.idempotency_key.endswith((":invite", ":reminder")):
                self._mark_ask(session, input, sent_at)
        _fault("crash-after-send")
        return SendEmailResult(str(row.id), provider_id, _iso(sent_at))

    def _write_outbox(self, input: SendEmailInput) -> Message:
        try:
            rendered = self.renderer.render(input.template, input.locale, self._context(input))
        except (jinja2.TemplateError, jinja2.exceptions.SecurityError) as err:
            # A broken template will not fix itself on retry: fail this step, visibly.
            where = f" line {err.lineno}" if isinstance(err, jinja2.TemplateSyntaxError) else ""
            raise ApplicationError(
                f"template {input.template!r}{where}: {err}", type="TemplateError", non_retryable=True
            ) from None
        row = Message(
            idempotency_key=input.idempotency_key,
            customer_id=input.customer_id,
            ask_id=input.ask_id,
            program=input.program,
            template=input.template,
            locale=rendered.locale,
            to_email=input.to_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            status="rendered",
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


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
