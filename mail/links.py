"""Activation, referral and unsubscribe links, with the UTM parameters reports rely on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

DEFAULT_SECRET = "dev-only-unsubscribe-secret"


def with_utm(url: str, campaign: str, content: str | None = None, medium: str = "email") -> str:
    parts = urlsplit(url)
    params = {"utm_source": "advocacy", "utm_medium": medium, "utm_campaign": campaign}
    if content:
        params["utm_content"] = content
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def sign_value(value: str, purpose: str, secret: str | None = None) -> str:
    """`value.signature`: a value a client keeps (a cookie) that it cannot alter or make up."""
    mac = hmac.new(_secret(secret), f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def verify_value(signed: str, purpose: str, secret: str | None = None) -> str | None:
    """The value `sign_value` signed, or None when the signature does not hold."""
    value, _, _ = signed.rpartition(".")
    return value if value and hmac.compare_digest(sign_value(value, purpose, secret), signed) else None


# An unsubscribe link keeps working for a year (old emails get opened late); then it gets a clear page.
TOKEN_MAX_AGE_DAYS = 365


class TokenError(ValueError):
    """An unsubscribe token that is malformed, forged, or expired."""


def _secret(secret: str | None) -> bytes:
    return (secret or os.environ.get("UNSUBSCRIBE_SECRET") or DEFAULT_SECRET).encode()


def _signature(customer_id: str, issued_day: int, secret: str | None) -> str:
    return hmac.new(_secret(secret), f"{customer_id}|{issued_day}".encode(), hashlib.sha256).hexdigest()[:32]


def unsubscribe_token(customer_id: str, secret: str | None = None, issued_day: int | None = None) -> str:
    """A signed token naming the customer and the day it was issued; the API verifies it in constant time."""
    day = issued_day if issued_day is not None else int(time.time() // 86400)
    payload = base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")
    return f"{payload}.{day}.{_signature(customer_id, day, secret)}"


def verify_unsubscribe_token(token: str, secret: str | None = None, today: int | None = None) -> str:
    """The customer id a token names; TokenError when it was tampered with, forged or has expired."""
    parts = token.split(".")
    # ASCII digits only ('²'.isdigit() is true), a day number of sane length, a hex signature.
    if len(parts) != 3 or not re.fullmatch(r"[0-9]{1,9}", parts[1]) or not re.fullmatch(r"[0-9a-f]{32}", parts[2]):
        raise TokenError("this link is not a valid unsubscribe link")
    payload, day, signature = parts[0], int(parts[1]), parts[2]
    try:
        customer_id = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise TokenError("this link is not a valid unsubscribe link") from None
    if not hmac.compare_digest(signature, _signature(customer_id, day, secret)):
        raise TokenError("this link is not a valid unsubscribe link")
    now = today if today is not None else int(time.time() // 86400)
    if now - day > TOKEN_MAX_AGE_DAYS:
        raise TokenError("this unsubscribe link has expired")
    return customer_id


# Advocate pages (`/a/{token}`): a token names the customer, the purpose it was made for and the day it was
# issued, signed with a key derived for that purpose, so a token made for one purpose (or an unsubscribe
# token) is no token for another, and changing the customer breaks the signature.
PAGE_TOKEN_MAX_AGE_DAYS = 90
PAGE_PURPOSES = ("advocate",)
# A page's form accepts its CSRF token for a day after the page was shown.
CSRF_MAX_AGE_SECONDS = 86400


def _purpose_key(purpose: str, secret: str | None) -> bytes:
    return hmac.new(_secret(secret), f"page-token|{purpose}".encode(), hashlib.sha256).digest()


def _page_signature(purpose: str, customer_id: str, issued: int, secret: str | None) -> str:
    key = _purpose_key(purpose, secret)
    return hmac.new(key, f"{customer_id}|{issued}".encode(), hashlib.sha256).hexdigest()[:32]


def page_token(customer_id: str, purpose: str, secret: str | None = None, issued_day: int | None = None) -> str:
    """A signed token for the customer's page of `purpose`, valid PAGE_TOKEN_MAX_AGE_DAYS from the day issued."""
    if purpose not in PAGE_PURPOSES:
        raise ValueError(f"purpose: one of {', '.join(PAGE_PURPOSES)}")
    day = issued_day if issued_day is not None else int(time.time() // 86400)
    payload = base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")
    return f"{payload}.{day}.{_page_signature(purpose, customer_id, day, secret)}"


def verify_page_token(token: str, purpose: str, secret: str | None = None, today: int | None = None) -> str:
    """The customer a page token names; TokenError when it is malformed, forged, made for another purpose
    or customer, or expired."""
    invalid = TokenError("this link is not a valid link to your page")
    parts = token.split(".")
    if len(parts) != 3 or not re.fullmatch(r"[0-9]{1,9}", parts[1]) or not re.fullmatch(r"[0-9a-f]{32}", parts[2]):
        raise invalid
    payload, day, signature = parts[0], int(parts[1]), parts[2]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,400}", payload):
        raise invalid
    try:
        customer_id = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    if purpose not in PAGE_PURPOSES or not hmac.compare_digest(
        signature, _page_signature(purpose, customer_id, day, secret)
    ):
        raise invalid
    now = today if today is not None else int(time.time() // 86400)
    if now - day > PAGE_TOKEN_MAX_AGE_DAYS or day > now + 1:
        raise TokenError("this link to your page has expired")
    return customer_id


def csrf_token(customer_id: str, secret: str | None = None, issued: int | None = None) -> str:
    """The hidden field of a page's forms: bound to the customer, valid for CSRF_MAX_AGE_SECONDS."""
    at = issued if issued is not None else int(time.time())
    return f"{at}.{_page_signature('csrf', customer_id, at, secret)}"


def verify_csrf_token(token: str, customer_id: str, secret: str | None = None, now: int | None = None) -> bool:
    at, _, signature = token.partition(".")
    if not re.fullmatch(r"[0-9]{1,12}", at) or not re.fullmatch(r"[0-9a-f]{32}", signature):
        return False
    if not hmac.compare_digest(signature, _page_signature("csrf", customer_id, int(at), secret)):
        return False
    current = now if now is not None else int(time.time())
    return -60 <= current - int(at) <= CSRF_MAX_AGE_SECONDS


def advocate_page(public_base_url: str, customer_id: str, secret: str | None = None) -> str:
    """The advocate's home (`GET /a/{token}`), where every ask email leads."""
    return f"{public_base_url}/a/{page_token(customer_id, 'advocate', secret)}"


def links_for(
    public_base_url: str,
    customer_id: str,
    program: str | None,
    ask_id: str | None,
    referral_code: str | None,
    program_link: str | None,
) -> dict[str, str]:
    page = advocate_page(public_base_url, customer_id)
    links = {
        "unsubscribe": f"{public_base_url}/u/{unsubscribe_token(customer_id)}",
        "advocate": with_utm(page, program or "advocate", ask_id),
    }
    if referral_code:
        links["referral"] = with_utm(f"{public_base_url}/r/{referral_code}", "referral", medium="referral")
    if program:
        # An ask leads to its page on the advocate's site (answers, the referral form), or to where the playbook
        # says it is done (a review site). Never through the advocate's own referral link: that would count
        # their click and set an attribution cookie in their own browser.
        base = program_link or (f"{page}/asks/{quote(ask_id, safe='')}" if ask_id else page)
        links["activation"] = with_utm(base, program, ask_id)
    return links
