"""JSON request bodies: parsed with a clear 400 naming the body, and a bound on nesting."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException

# Deeper than any event or webhook post; deep enough to stay clear of Python's recursion limit downstream.
MAX_JSON_DEPTH = 64


def parse_json(body: bytes) -> Any:
    """The body as JSON; 400 naming the body when it is not JSON or nested deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "body: not valid JSON") from None
    except RecursionError:
        raise HTTPException(400, f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise HTTPException(400, f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                level.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
