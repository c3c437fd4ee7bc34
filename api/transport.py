"""The front door of every request body: who may send one, how large, in which encoding.

A pure ASGI middleware, so it runs before FastAPI reads a body (FastAPI reads a
pydantic-typed body whole before the route's own code runs):

1. the caller is authenticated first, from the headers alone (a write key, or
   SendGrid's signature headers on the webhook); without them 401, body unread;
2. a `Content-Length` over the path's limit is refused (413) unread;
3. a chunked body is counted as it streams and refused (413) once over the limit;
4. `Content-Encoding: gzip` (what Segment's and RudderStack's clients send) is
   accepted on the event endpoints and inflated with the same bound on the
   inflated size (a gzip bomb gets 413 after at most the limit of output).

The routes parse what gets through with `api.bodies.parse_json`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import auth, webhooks
from api.segment import MAX_BATCH_BYTES
from plumbing.config import Settings

KB = 1024


@dataclass(frozen=True)
class Door:
    """What a POST path needs before its body is read."""

    path: re.Pattern[str]
    limit: int  # bytes, after inflating
    caller: Literal["write", "sendgrid", "anyone"]
    gzip: bool = False


# First match wins; a POST to any other path gets the last door's limit (the router answers 404/405).
DOORS = (
    Door(re.compile(r"/v1/(events|track|identify|batch)"), MAX_BATCH_BYTES, "write", gzip=True),
    Door(re.compile(r"/v1/webhooks/sendgrid"), webhooks.MAX_BODY, "sendgrid"),
    Door(re.compile(r"/v1/.*"), 64 * KB, "write"),
    Door(re.compile(r"/u/[^/]+"), 4 * KB, "anyone"),  # RFC 8058's one-click post: a form field
    Door(re.compile(r".*"), 64 * KB, "anyone"),
)
WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


def door_for(path: str) -> Door:
    return next(door for door in DOORS if door.path.fullmatch(path))


def _kb(limit: int) -> str:
    return f"{limit // KB} KB" if limit < 1024 * KB else f"{limit // (1024 * KB)} MB"


class BodyGuard:
    """Authenticate, then bound (and inflate) the body, before the app reads any of it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        door = door_for(scope["path"])
        try:
            self._admit(Request(scope), door)
            inflated = await _inflate(receive, door.limit) if _encoding(scope) == "gzip" else None
        except HTTPException as refused:  # before the app ran: nothing was read past the refusal
            response = JSONResponse({"detail": refused.detail}, refused.status_code, headers=refused.headers)
            await response(scope, receive, send)
            return
        if inflated is None:
            # Over the limit mid-stream: the 413 is raised where the route reads, and answered by the app.
            await self.app(scope, _counted(receive, door.limit), send)
        else:
            await self.app(_plain(scope, len(inflated)), _replay(inflated, receive), send)

    def _admit(self, request: Request, door: Door) -> None:
        if door.caller == "write":
            auth.require(request, self.settings.api_write_keys, "write")
        elif door.caller == "sendgrid":
            webhooks.admit(request, self.settings)
        encoding = _encoding(request.scope)
        if encoding not in ("", "identity") and not (encoding == "gzip" and door.gzip):
            accepted = "gzip or none" if door.gzip else "none"
            raise HTTPException(415, f"Content-Encoding {encoding!r} is not accepted here ({accepted})")
        length = request.headers.get("content-length")
        if length is not None and not length.isdigit():
            raise HTTPException(400, "Content-Length: not a number")
        if length is not None and int(length) > door.limit:
            raise HTTPException(413, f"request larger than {_kb(door.limit)}")


def _encoding(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-encoding":
            return str(value.decode("latin-1").strip().lower())
    return ""


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise HTTPException(413, f"request larger than {_kb(limit)}")
        return message

    return counting


async def _inflate(receive: Receive, limit: int) -> bytes:
    """The gzip body inflated, reading and producing at most `limit` bytes (one member after another)."""
    inflater, out, received, more = zlib.decompressobj(wbits=31), bytearray(), 0, True
    try:
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPException(400, "body: the client went away")
            chunk, more = message.get("body", b""), message.get("more_body", False)
            received += len(chunk)
            if received > limit:
                raise HTTPException(413, f"request larger than {_kb(limit)}")
            while chunk:
                out += inflater.decompress(chunk, limit + 1 - len(out))
                if len(out) > limit:
                    raise HTTPException(413, f"request larger than {_kb(limit)} once decompressed")
                chunk = b""
                if inflater.eof and inflater.unused_data:  # concatenated gzip members
                    chunk, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
    except zlib.error:
        raise HTTPException(400, "body: not valid gzip") from None
    if not inflater.eof:
        raise HTTPException(400, "body: not valid gzip (truncated)")
    return bytes(out)


def _plain(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """The inflated body in one message; then the connection's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
