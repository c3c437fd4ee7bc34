"""The codec endpoint the Temporal Web UI calls to show encrypted payloads to operators who hold the key.

Run it where the key is (an operator's machine or a protected service):
`PAYLOAD_ENCRYPTION_KEY=... python starter.py codec-server`, then set the UI's
codec endpoint (Settings → Data Encoder, or TEMPORAL_CODEC_ENDPOINT) to its URL.
It speaks the UI's protocol: POST /decode and /encode with {"payloads": [...]}.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from plumbing.codec import EncryptionCodec, EncryptionKeyError


def create_codec_app(codec: EncryptionCodec, ui_origins: list[str]) -> FastAPI:
    app = FastAPI(title="Advocacy journeys payload codec", version="1.0.0")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=ui_origins,
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
    )

    async def convert(request: Request, decode: bool) -> Response:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            raise HTTPException(400, 'body: expected {"payloads": [...]} in Temporal\'s JSON format') from None
        try:
            converted = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except EncryptionKeyError as err:
            raise HTTPException(400, str(err)) from None
        return Response(json_format.MessageToJson(Payloads(payloads=converted)), media_type="application/json")

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await convert(request, decode=True)

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await convert(request, decode=False)

    return app
