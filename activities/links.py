"""Activation, referral and unsubscribe links, with the UTM parameters reports rely on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from urllib.parse import urlencode, urlsplit, urlunsplit

DEFAULT_SECRET = "dev-only-unsubscribe-secret"


def with_utm(url: str, campaign: str, content: str | None = None, medium: str = "email") -> str:
    parts = urlsplit(url)
    params = {"utm_source": "advocacy", "utm_medium": medium, "utm_campaign": campaign}
    if content:
        params["utm_content"] = content
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def unsubscribe_token(customer_id: str, secret: str | None = None) -> str:
    """A signed token naming the customer; the API verifies it in constant time."""
    key = (secret or os.environ.get("UNSUBSCRIBE_SECRET") or DEFAULT_SECRET).encode()
    payload = base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")
    signature = hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{signature}"


def links_for(
    public_base_url: str,
    customer_id: str,
    program: str | None,
    ask_id: str | None,
    referral_code: str | None,
    program_link: str | None,
) -> dict[str, str]:
    links = {"unsubscribe": f"{public_base_url}/u/{unsubscribe_token(customer_id)}"}
    if referral_code:
        links["referral"] = with_utm(f"{public_base_url}/r/{referral_code}", "referral", medium="referral")
    if program:
        if program == "referral" and referral_code:
            links["activation"] = links["referral"]
        else:
            base = program_link or f"{public_base_url}/story/{customer_id}/{ask_id or program}"
            links["activation"] = with_utm(base, program, ask_id)
    return links
