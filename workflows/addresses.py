"""Email addresses compared as the person behind them: one rule for the API, Segment, /v1/events and the journey.

`address_key` maps every spelling of one mailbox to one key:

- Unicode NFKC and lower case, and a trailing dot of the domain (`acme.com.`) dropped; the edges (API,
  ingest) check the syntax and IDNA first with `email-validator` (`normalise`), which is not called here in the
  workflow because it imports parts of itself at call time, which the workflow sandbox refuses;
- look-alike letters from other scripts (Cyrillic `а` for Latin `a`) mapped to the Latin letter they imitate,
  from Unicode's confusables data (`confusable-homoglyphs`); plain ASCII is left as it is;
- provider rules, ours: a `+tag` is dropped everywhere (Gmail, Outlook, iCloud, Proton, Fastmail deliver it
  to the same mailbox); at Gmail dots in the local part do not count, and `googlemail.com` is `gmail.com`.

Pure and deterministic (the journey's policy calls it): both libraries are pinned in requirements.txt.
"""

from __future__ import annotations

import functools
import unicodedata

from confusable_homoglyphs.confusables import confusables_data  # type: ignore[import-untyped]
from email_validator import EmailNotValidError, validate_email

_GMAIL = frozenset({"gmail.com", "googlemail.com"})


class AddressError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def _latin(char: str) -> str:
    if char.isascii():
        return char
    for homoglyph in confusables_data.get(char, ()):
        c = homoglyph["c"]
        if c.isascii() and c.isalnum():
            return str(c).lower()
    return char


def skeleton(text: str) -> str:
    """`text` with look-alike letters of other scripts replaced by the Latin letters they imitate."""
    return "".join(_latin(c) for c in text.lower())


def normalise(address: str) -> str:
    """The address in its normal form (trimmed, domain in lower case and IDNA-checked); AddressError if it is none."""
    text = address.strip() if isinstance(address, str) else ""
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise AddressError("not an email address")
    try:
        checked = validate_email(f"{local}@{domain.rstrip('.')}", check_deliverability=False)
    except EmailNotValidError as err:
        raise AddressError(f"not an email address ({err})") from None
    return f"{checked.local_part.lower()}@{checked.domain.lower()}"


def address_key(address: str) -> str:
    """One key per mailbox: `Ada.Lovelace+x@GoogleMail.com.` and `adalovelace@gmail.com` share it."""
    local, _, domain = unicodedata.normalize("NFKC", address.strip()).rpartition("@")
    local, domain = skeleton(local), skeleton(domain.rstrip("."))
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL:
        domain, local = "gmail.com", local.replace(".", "")
    return f"{local}@{domain}"


def key_domain(key: str) -> str:
    return key.rpartition("@")[2]


def same_organisation(domain: str, other: str) -> bool:
    """`eu.acme.com` and `acme.com` are one company's mail; `notacme.com` is not."""
    return domain == other or domain.endswith(f".{other}") or other.endswith(f".{domain}")
