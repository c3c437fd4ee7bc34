"""API keys: write keys for ingest, read keys for journey state; HTTP Basic (key as user, as Segment
sends it) or a Bearer token; compared in constant time against every configured key."""

from __future__ import annotations

import base64
import hmac

from fastapi import HTTPException, Request


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            user, _, _ = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


def _matches(key: str | None, allowed: tuple[str, ...]) -> bool:
    if not key:
        return False
    # Compare against every key, without stopping early, so timing says nothing about which one.
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found


def require(request: Request, allowed: tuple[str, ...], what: str) -> None:
    if not _matches(presented_key(request), allowed):
        raise HTTPException(
            status_code=401,
            detail=f"a valid {what} key is required (HTTP Basic with the key as user, or Bearer)",
            headers={"WWW-Authenticate": 'Basic realm="advocacy"'},
        )
