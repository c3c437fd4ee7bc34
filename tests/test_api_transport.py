"""The API's front door: secrets it refuses to start without, bodies bounded before they are read,
authentication before the body, gzip from Segment's clients."""

from __future__ import annotations

import secrets

import pytest
import uvicorn

import starter

STRONG = secrets.token_hex(24)


@pytest.mark.parametrize("secret", [None, "", "change-me", "dev-only-unsubscribe-secret", "short-secret"])
def test_the_api_refuses_to_start_without_a_strong_unsubscribe_secret(
    secret: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[bool] = []

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        served.append(True)

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("API_WRITE_KEYS", "w" * 32)
    monkeypatch.setenv("API_READ_KEYS", "r" * 32)
    if secret is None:
        monkeypatch.delenv("UNSUBSCRIBE_SECRET", raising=False)
    else:
        monkeypatch.setenv("UNSUBSCRIBE_SECRET", secret)
    assert starter.main(["api"]) == 2
    assert served == [] and "UNSUBSCRIBE_SECRET" in capsys.readouterr().err


def test_the_api_starts_with_a_strong_unsubscribe_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[bool] = []

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        served.append(True)

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("API_WRITE_KEYS", "w" * 32)
    monkeypatch.setenv("API_READ_KEYS", "r" * 32)
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", STRONG)
    assert starter.main(["api"]) == 0 and served == [True]
