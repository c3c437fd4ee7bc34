"""One-click unsubscribe (RFC 8058): GET shows one button, POST unsubscribes. Plain pages, never a trace."""

from __future__ import annotations

import hashlib
import html
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from temporalio.service import RPCError

from api.deps import deps
from client.events import new_event
from client.ingest import Item
from mail.links import TokenError, verify_unsubscribe_token

log = logging.getLogger("advocacy.api")
router = APIRouter(tags=["unsubscribe"])
PAGES = {
    200: {"content": {"text/html": {}}, "description": "a plain page"},
    400: {"content": {"text/html": {}}, "description": "the link is invalid or has expired"},
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title></head>
<body style="font-family: Arial, sans-serif; max-width: 520px; margin: 64px auto; color: #1f2933;">
<h1 style="font-size: 22px;">{html.escape(title)}</h1>{body}</body></html>""",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _invalid(err: TokenError) -> HTMLResponse:
    return _page(
        "This link does not work",
        f"<p>{html.escape(str(err))}.</p><p>To stop our emails, use the unsubscribe link in a recent email "
        "or reply to it and we will take you off the list.</p>",
        400,
    )


@router.get("/u/{token}", response_class=HTMLResponse, responses=PAGES)  # type: ignore[arg-type]
async def confirm(token: str, request: Request) -> HTMLResponse:
    try:
        verify_unsubscribe_token(token)
    except TokenError as err:
        return _invalid(err)
    action = html.escape(f"/u/{token}", quote=True)
    return _page(
        "Unsubscribe from our advocacy emails?",
        "<p>You will no longer receive requests for reviews, referrals or references from us.</p>"
        f'<form method="post" action="{action}"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit" style="padding: 10px 16px; font-size: 16px;">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", response_class=HTMLResponse, responses=PAGES)  # type: ignore[arg-type]
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click (what mail clients call) and the confirmation page's button."""
    try:
        customer_id = verify_unsubscribe_token(token)
    except TokenError as err:
        return _invalid(err)
    # The same link clicked twice is one event.
    event_id = f"unsubscribe-{hashlib.sha256(token.encode()).hexdigest()[:32]}"
    event = new_event(customer_id, "unsubscribed", {"reason": "one-click unsubscribe link"}, event_id=event_id)
    # A customer whose journey has ended gets no more asks anyway: the same answer. When Temporal
    # cannot be reached the event is kept pending and the relay delivers it: the same answer too.
    try:
        await deps(request).ingest.accept([Item(0, event)])
    except RPCError as err:
        log.warning("unsubscribe for %s stored, journey signal pending: %s", customer_id, err.message)
    return _page("You are unsubscribed", "<p>You will not receive advocacy requests from us any more.</p>")
