"""The codec endpoint the Temporal Web UI calls to show encrypted payloads to operators who hold the key.

Run it where the key is (an operator's machine or a protected service):
`PAYLOAD_ENCRYPTION_KEY=... python starter.py codec-server`, then set the UI's
codec endpoint (Settings → Data Encoder, or TEMPORAL_CODEC_ENDPOINT) to its URL.
It speaks the UI's protocol: POST /decode and /encode with {"payloads": [...]}.

Anyone who can call it reads every payload, so it asks for `Authorization: Bearer
<CODEC_AUTH_TOKEN>` (compared in constant time) and answers CORS only for the
configured Web UI origins; `starter.py codec-server` refuses to start without a
token unless it is bound to localhost (an operator's own machine, the demo).
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from plumbing.codec import EncryptionCodec, EncryptionKeyError


def create_codec_app(codec: EncryptionCodec, ui_origins: list[str], *, token: str | None = None) -> FastAPI:
    """`token` None: no authentication (only for a server bound to localhost)."""
    app = FastAPI(title="Advocacy journeys payload codec", version="1.0.0")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=ui_origins,
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
    )

    def authenticate(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if token is not None and not (
            scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
        ):
            raise HTTPException(401, "Authorization: Bearer <CODEC_AUTH_TOKEN> is required",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    async def convert(request: Request, decode: bool) -> Response:
        authenticate(request)
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
