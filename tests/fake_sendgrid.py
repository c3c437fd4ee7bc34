"""A local HTTP server that speaks SendGrid's v3 mail/send contract, with faults to inject.

It answers as SendGrid does: 202 with X-Message-Id for an accepted message;
400 with SendGrid's error JSON for an invalid body; 401 for a wrong key; 413
past the size limit; and whatever a test scripts (429 with rate-limit headers,
500, slow answers). Accepted messages are kept, so a test can count exactly
what was delivered.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    status: int = 0  # 0: no error answer, just the delay
    delay: float = 0.0  # seconds before answering (a slow SendGrid)
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    accept_anyway: bool = False  # a slow answer after SendGrid accepted (the client may have given up)


def rate_limited(reset_in: float = 1.0) -> Fault:
    return Fault(
        429,
        body={"errors": [{"field": None, "message": "too many requests"}]},
        headers={
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + reset_in:.0f}",
        },
    )


def server_error() -> Fault:
    return Fault(500, body={"errors": [{"field": None, "message": "internal error"}]})


def error(message: str, field_name: str | None = None, status: int = 400) -> Fault:
    return Fault(status, body={"errors": [{"field": field_name, "message": message, "help": None}]})


class FakeSendGrid:
    def __init__(self, api_key: str = "SG.test-key", max_bytes: int = 30 * 1024 * 1024) -> None:
        self.api_key = api_key
        self.max_bytes = max_bytes
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.faults: deque[Fault] = deque()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeSendGrid:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def keys(self) -> list[str]:
        """The idempotency keys of accepted messages, in order: duplicates show up here."""
        with self.lock:
            return [m["personalizations"][0]["custom_args"]["idempotency_key"] for m in self.accepted]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(
                self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.requests += 1
                    fault = fake.faults.popleft() if fake.faults else None
                if self.path != "/v3/mail/send":
                    return self._answer(404, {"errors": [{"message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._answer(401, {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}]})  # fmt: skip
                if length > fake.max_bytes:
                    return self._answer(413, {"errors": [{"field": None, "message": "Payload too large"}]})
                if fault is not None:
                    time.sleep(fault.delay)
                    if fault.status and not fault.accept_anyway:
                        return self._answer(fault.status, fault.body, fault.headers)
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._answer(400, {"errors": [{"field": None, "message": "Bad Request"}]})
                problems = validate(body)
                if problems:
                    return self._answer(
                        400, {"errors": [{"field": f, "message": m, "help": None} for f, m in problems]}
                    )
                message_id = uuid.uuid4().hex[:22]
                with fake.lock:
                    fake.accepted.append({**body, "_message_id": message_id})
                self._answer(202, None, {"X-Message-Id": message_id})

        return Handler


def validate(body: Any) -> list[tuple[str, str]]:
    """The parts of SendGrid's mail/send validation our sender can get wrong."""
    problems: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        return [("", "The request body must be a JSON object")]
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(("personalizations", "The personalizations field is required and must have at least one personalization."))  # fmt: skip
    else:
        for i, p in enumerate(personalizations):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to or not all("@" in str(t.get("email", "")) for t in to):
                problems.append((f"personalizations.{i}.to", "Each personalization must have a valid to address."))
            args = p.get("custom_args", {}) if isinstance(p, dict) else {}
            if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
                problems.append((f"personalizations.{i}.custom_args", "custom_args values must be strings."))
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        problems.append(("from.email", "The from email does not contain a valid address."))
    if "template_id" not in body:
        if not isinstance(body.get("subject"), str) or not body["subject"]:
            problems.append(("subject", "The subject is required."))
        content = body.get("content")
        if not isinstance(content, list) or not content:
            problems.append(("content", "Unless a valid template_id is provided, the content parameter is required."))
        elif content[0].get("type") != "text/plain" and any(c.get("type") == "text/plain" for c in content):
            problems.append(("content", "If present, text/plain content must be first."))
    categories = body.get("categories", [])
    if len(categories) > 10 or not all(isinstance(c, str) and len(c) <= 255 for c in categories):
        problems.append(("categories", "Up to 10 categories, each a string of at most 255 characters."))
    headers = body.get("headers", {})
    if not all(isinstance(v, str) for v in headers.values()):
        problems.append(("headers", "Header values must be strings."))
    asm = body.get("asm")
    if asm is not None and not isinstance(asm.get("group_id"), int):
        problems.append(("asm.group_id", "The group_id must be an integer."))
    return problems
