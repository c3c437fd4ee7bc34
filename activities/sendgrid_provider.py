"""SendGrid delivery through the official client (v3 mail/send).

Errors are sorted by what a retry can fix:
- 429: rate limited; retried after SendGrid's reset time (X-RateLimit-Reset, or
  Retry-After), given to Temporal as the activity's next retry delay;
- 5xx, timeouts and connection errors: retried with the activity's backoff;
- 400, 401, 403, 413 and other 4xx: permanent, non-retryable, with SendGrid's
  own error messages, which end up in the journey state.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from temporalio.exceptions import ApplicationError

from activities.email import OutgoingEmail

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_RATE_LIMIT_WAIT = timedelta(minutes=15)


@dataclass(frozen=True)
class SendGridSettings:
    api_key: str
    sender: str = "Advocacy Team <advocacy@example.com>"
    host: str = DEFAULT_HOST
    asm_group_id: int | None = None
    sandbox_mode: bool = False
    timeout_seconds: float = 20.0
    categories: tuple[str, ...] = ("advocacy",)

    @staticmethod
    def from_env() -> SendGridSettings:
        env = os.environ
        key = env.get("SENDGRID_API_KEY", "")
        if not key:
            raise SystemExit("EMAIL_PROVIDER=sendgrid needs SENDGRID_API_KEY")
        group = env.get("SENDGRID_ASM_GROUP_ID", "")
        if group and not group.isdigit():
            raise SystemExit(f"SENDGRID_ASM_GROUP_ID must be a number, got {group!r}")
        return SendGridSettings(
            api_key=key,
            sender=env.get("EMAIL_FROM", "Advocacy Team <advocacy@example.com>"),
            host=env.get("SENDGRID_API_HOST", DEFAULT_HOST).rstrip("/"),
            asm_group_id=int(group) if group else None,
            sandbox_mode=env.get("SENDGRID_SANDBOX_MODE", "").lower() in ("1", "true", "yes"),
            timeout_seconds=float(env.get("SENDGRID_TIMEOUT_SECONDS", "20")),
        )


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, settings: SendGridSettings) -> None:
        self.settings = settings
        self.api = SendGridAPIClient(api_key=settings.api_key, host=settings.host)

    def payload(self, message: OutgoingEmail) -> dict[str, Any]:
        """The v3 mail/send body: custom_args let webhook events find their way back to the journey."""
        name, address = parseaddr(self.settings.sender)
        custom_args = {
            "idempotency_key": message.idempotency_key,
            "customer_id": message.customer_id,
            "ask_id": message.ask_id or "",
            "program": message.program or "",
        }
        personalization: dict[str, Any] = {"to": [{"email": message.to_email}], "custom_args": custom_args}
        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": {"email": address, **({"name": name} if name else {})},
            "categories": [*self.settings.categories, *(c for c in (message.program, message.template) if c)][:10],
        }
        if message.provider_template_id:
            body["template_id"] = message.provider_template_id
            personalization["dynamic_template_data"] = message.template_data
        else:
            body["subject"] = message.subject
            body["content"] = [
                {"type": "text/plain", "value": message.text},
                {"type": "text/html", "value": message.html},
            ]
        if message.headers:
            body["headers"] = dict(message.headers)
        if self.settings.asm_group_id is not None:
            body["asm"] = {"group_id": self.settings.asm_group_id}
        if self.settings.sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def send(self, message: OutgoingEmail) -> str:
        try:
            response = self.api.client.mail.send.post(
                request_body=self.payload(message), timeout=self.settings.timeout_seconds
            )
        except HTTPError as err:
            raise classify(err) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise ApplicationError(f"SendGrid unreachable: {reason}", type="SendGridUnavailable") from None
        # Accepted (202): whatever happens next, this message must not be sent again.
        message_id = _header(response.headers, "X-Message-Id")
        return message_id or f"sendgrid-accepted-{response.status_code}"


def classify(err: HTTPError) -> ApplicationError:
    status = int(err.status_code)
    detail = _error_messages(err.body)
    if status == 429:
        delay = _rate_limit_delay(err.headers)
        return ApplicationError(
            f"SendGrid rate limit (429): retrying in {delay.total_seconds():.0f}s. {detail}".strip(),
            type="SendGridRateLimited",
            next_retry_delay=delay,
        )
    if status >= 500:
        return ApplicationError(f"SendGrid server error ({status}): {detail}".strip(), type="SendGridServerError")
    return ApplicationError(
        f"SendGrid refused the message ({status}): {detail}".strip(), type="SendGridRejected", non_retryable=True
    )


def _error_messages(body: Any) -> str:
    """SendGrid's {"errors": [{"message", "field", "help"}]} as one line."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return (body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or ""))[:300]
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for e in errors:
        if isinstance(e, dict):
            field = f"{e['field']}: " if e.get("field") else ""
            parts.append(f"{field}{e.get('message', '')}")
    return "; ".join(parts)[:500]


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and hasattr(headers, "items"):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return str(value) if value is not None else None


def _rate_limit_delay(headers: Any) -> timedelta:
    reset = _header(headers, "X-RateLimit-Reset")
    retry_after = _header(headers, "Retry-After")
    seconds = 1.0
    try:
        if reset is not None:
            seconds = float(reset) - time.time()
        elif retry_after is not None:
            seconds = float(retry_after)
    except ValueError:
        pass
    return min(timedelta(seconds=max(seconds, 1.0)), MAX_RATE_LIMIT_WAIT)
