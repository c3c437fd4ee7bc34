"""Payload encryption (AES-256-GCM) for workflow histories, with key ids so keys can rotate.

PAYLOAD_ENCRYPTION_KEY holds one or more keys, `id:base64key`, comma-separated:
the first encrypts, all of them decrypt. A bare base64 key has the id
`default`. Unset (the default), payloads stay plain JSON.

    python -c "import os, base64; print('k1:' + base64.b64encode(os.urandom(32)).decode())"
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class EncryptionKeyError(ValueError):
    """A key setting that cannot be used, or a payload no configured key can open."""


def parse_keys(value: str) -> dict[str, bytes]:
    """`id:base64,...` -> {id: key}, first entry first; EncryptionKeyError names what is wrong."""
    keys: dict[str, bytes] = {}
    for index, item in enumerate(v.strip() for v in value.split(",") if v.strip()):
        key_id, _, encoded = item.rpartition(":") if ":" in item else ("default", "", item)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionKeyError(f"PAYLOAD_ENCRYPTION_KEY entry {index + 1}: not base64") from None
        if len(key) != 32:
            raise EncryptionKeyError(
                f"PAYLOAD_ENCRYPTION_KEY entry {index + 1}: a key must be 32 bytes (AES-256), got {len(key)}"
            )
        if not key_id or key_id in keys:
            raise EncryptionKeyError(f"PAYLOAD_ENCRYPTION_KEY entry {index + 1}: missing or repeated key id {key_id!r}")
        keys[key_id] = key
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise EncryptionKeyError("no encryption key given")
        self.keys = keys
        self.current_id = next(iter(keys))
        self._current = AESGCM(keys[self.current_id])

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.current_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        key = self.keys.get(key_id)
        if key is None:
            raise EncryptionKeyError(
                f"payload encrypted with key {key_id!r}, which PAYLOAD_ENCRYPTION_KEY does not hold"
            )
        try:
            plain = AESGCM(key).decrypt(payload.data[:12], payload.data[12:], None)
        except InvalidTag:
            raise EncryptionKeyError(
                f"payload does not decrypt with key {key_id!r}: a different key under that id, or tampered"
            ) from None
        return Payload.FromString(plain)


def codec_from_env() -> EncryptionCodec | None:
    value = os.environ.get("PAYLOAD_ENCRYPTION_KEY", "").strip()
    return EncryptionCodec(parse_keys(value)) if value else None
