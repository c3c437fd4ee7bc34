"""Payload encryption: round trips, key rotation, wrong keys, no PII in histories, the UI's codec endpoint."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from google.protobuf import json_format
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment

import starter
from plumbing.codec import EncryptionCodec, EncryptionKeyError, parse_keys
from plumbing.codec_server import create_codec_app
from plumbing.converter import data_converter
from tests.conftest import TEST_SERVER, register_search_attributes, running_worker


def _key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_round_trip_hides_the_content_and_names_the_key() -> None:
    codec = EncryptionCodec(parse_keys(_key("k1")))
    (sealed,) = await codec.encode([_plain("ada@analytical.example")])
    assert sealed.metadata["encoding"] == b"binary/encrypted" and sealed.metadata["encryption-key-id"] == b"k1"
    assert b"ada@" not in sealed.data
    assert await codec.decode([sealed]) == [_plain("ada@analytical.example")]
    untouched = _plain("written before encryption")
    assert await codec.decode([untouched]) == [untouched]


async def test_rotation_new_key_encrypts_old_keys_still_decrypt() -> None:
    old, new = _key("2026-01"), _key("2026-11")
    (before,) = await EncryptionCodec(parse_keys(old)).encode([_plain("x")])
    rotated = EncryptionCodec(parse_keys(f"{new},{old}"))
    (after,) = await rotated.encode([_plain("y")])
    assert after.metadata["encryption-key-id"] == b"2026-11"
    assert await rotated.decode([before, after]) == [_plain("x"), _plain("y")]
    with pytest.raises(EncryptionKeyError, match="'2026-01', which PAYLOAD_ENCRYPTION_KEY does not hold"):
        await EncryptionCodec(parse_keys(new)).decode([before])


async def test_a_wrong_key_or_tampering_is_refused() -> None:
    (sealed,) = await EncryptionCodec(parse_keys(_key("k1"))).encode([_plain("x")])
    with pytest.raises(EncryptionKeyError, match="does not decrypt with key 'k1'"):
        await EncryptionCodec(parse_keys(_key("k1"))).decode([sealed])
    codec = EncryptionCodec(parse_keys(_key("k2")))
    (good,) = await codec.encode([_plain("x")])
    good.data = good.data[:-1] + bytes([good.data[-1] ^ 1])
    with pytest.raises(EncryptionKeyError):
        await codec.decode([good])


@pytest.mark.parametrize(
    ("value", "message"),
    [("k1:not base64!", "not base64"), ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
     (f"{_key('a')},{_key('a')}", "repeated key id")],
)  # fmt: skip
def test_bad_key_settings_are_named(value: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError, match=message):
        parse_keys(value)


async def test_histories_hold_no_customer_pii_in_clear(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    codec = EncryptionCodec(parse_keys(_key("k1")))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=data_converter(codec)
    )
    await register_search_attributes(env.client)
    try:
        async with running_worker(env, tmp_path, sessions) as h:
            c = h.cid("secret")
            await h.profile(c, name="Ada Lovelace", company="Analytical Engines", segment="enterprise")
            await h.send(c, "nps_response", {"score": 10, "comment": "my private opinion"})
            await h.sleep(days=3)
            state = await h.state(c)
            assert state.profile.name == "Ada Lovelace" and state.asks  # decrypted for those with the key
            history = (await env.client.get_workflow_handle(f"advocacy-{c}").fetch_history()).to_json()
        for secret in ("Lovelace", "Analytical Engines", f"{c}@acme", "my private opinion"):
            assert secret not in history, secret
        assert base64.b64encode(b"binary/encrypted").decode() in history  # the payloads' encoding, as stored
    finally:
        await env.shutdown()


async def test_the_codec_endpoint_decodes_for_the_web_ui() -> None:
    keys = _key("k1")
    codec = EncryptionCodec(parse_keys(keys))
    sealed = await codec.encode([_plain("ada@analytical.example")])
    body = json_format.MessageToJson(Payloads(payloads=sealed))
    app = create_codec_app(codec, ["http://localhost:8233"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        answer = await http.post("/decode", content=body, headers={"Origin": "http://localhost:8233"})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "http://localhost:8233"
        decoded = json_format.Parse(answer.text, Payloads())
        assert list(decoded.payloads) == [_plain("ada@analytical.example")]
        encoded = await http.post("/encode", content=answer.text)
        assert json_format.Parse(encoded.text, Payloads()).payloads[0].metadata["encoding"] == b"binary/encrypted"
        stranger = create_codec_app(EncryptionCodec(parse_keys(_key("k1"))), [])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stranger), base_url="http://codec") as other:
            refused = await other.post("/decode", content=body)
            assert refused.status_code == 400 and "does not decrypt" in refused.json()["detail"]
        assert (await http.post("/decode", content="not json")).status_code == 400


async def test_the_codec_endpoint_requires_its_token_and_answers_only_the_ui_origin() -> None:
    codec = EncryptionCodec(parse_keys(_key("k1")))
    body = json_format.MessageToJson(Payloads(payloads=await codec.encode([_plain("ada@analytical.example")])))
    token = secrets.token_hex(24)
    app = create_codec_app(codec, ["http://localhost:8233"], token=token)
    ui = {"Origin": "http://localhost:8233"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            for path in ("/decode", "/encode"):
                refused = await http.post(path, content=body, headers={**ui, **headers})
                assert refused.status_code == 401 and "CODEC_AUTH_TOKEN" in refused.json()["detail"]
        answer = await http.post("/decode", content=body, headers={**ui, "Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ui["Origin"]
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = await http.options("/decode", headers={**ui, **preflight})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ui["Origin"]
        other = await http.options("/decode", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("host", "token", "served"),
    [("0.0.0.0", None, False), ("10.0.0.5", "short", False), ("0.0.0.0", "t" * 8 + secrets.token_hex(16), True),
     ("127.0.0.1", None, True), ("localhost", None, True)],
)  # fmt: skip
def test_the_codec_server_needs_a_token_unless_bound_to_localhost(
    host: str, token: str | None, served: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Any] = []

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        started.append(self.config.app)

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("PAYLOAD_ENCRYPTION_KEY", _key("k1"))
    if token is None:
        monkeypatch.delenv("CODEC_AUTH_TOKEN", raising=False)
    else:
        monkeypatch.setenv("CODEC_AUTH_TOKEN", token)
    code = starter.main(["codec-server", "--host", host, "--ui-origin", "https://ui.example"])
    assert (code, len(started)) == ((0, 1) if served else (2, 0))
    if not served:
        assert "CODEC_AUTH_TOKEN" in capsys.readouterr().err
