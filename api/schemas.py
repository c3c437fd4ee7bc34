"""Request and response shapes, for the OpenAPI schema the app serves (bodies are validated by our own
parsers, which name the field at fault the same way the CLI does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from workflows.events import EVENT_TYPES, TEXT_LIMITS


class ContractEvent(BaseModel):
    event_id: str = Field(description="the caller's idempotency key")
    customer_id: str
    type: str = Field(description=f"one of {', '.join(EVENT_TYPES)}")
    occurred_at: str = Field(description="ISO 8601")
    data: dict[str, Any] = Field(default_factory=dict)


class ItemErrorModel(BaseModel):
    index: int = Field(description="position of the item in the request (0 for a single event)")
    field: str = Field(description="the field at fault, e.g. data.score")
    message: str


class IngestResult(BaseModel):
    success: bool
    accepted: int = Field(description="events stored and delivered to their journeys")
    recorded_only: int = Field(description="calls stored that change no journey (unmapped Segment calls)")
    errors: list[ItemErrorModel]


class Problem(BaseModel):
    detail: str


class JourneyStateModel(BaseModel):
    model_config = {"extra": "allow"}
    customer_id: str
    stage: str
    tier: str
    score: int
    last_nps: int | None = None
    paused: bool
    opted_out: bool
    events_applied: int
    referral_code: str | None = None
    asks: list[dict[str, Any]]
    rewards: list[dict[str, Any]]


class ReferralRequest(BaseModel):
    # Bounded like the referrals table's columns (workflows.events.TEXT_LIMITS): longer is a 422 naming the field.
    referee_email: str = Field(max_length=TEXT_LIMITS["referee_email"])
    referee_name: str | None = Field(None, max_length=TEXT_LIMITS["referee_name"])
    referee_company: str | None = Field(None, max_length=TEXT_LIMITS["referee_company"])
    code: str | None = Field(None, description="the advocate's referral code (or advocate_id)")
    advocate_id: str | None = None


class ReferralResult(BaseModel):
    referral_id: str
    status: str
    advocate_id: str


class DealRequest(BaseModel):
    deal_id: str = Field(description="the CRM's deal id; with stage, the idempotency key")
    stage: str = Field(description="opportunity | won | lost | refunded")
    amount: float | None = None
    currency: str | None = None
    referral_id: str | None = None
    referee_email: str | None = None
    code: str | None = None


class DealResult(BaseModel):
    advocate_id: str
    referral_id: str
    event_id: str
    duplicate: bool


class WebhookResult(BaseModel):
    accepted: int
    duplicates: int
    ignored: int


_EVENT_SCHEMA = ContractEvent.model_json_schema()
CONTRACT_EVENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}}},
}


def segment_body(kind: str) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["messageId"],
        "properties": {
            "messageId": {"type": "string"},
            "userId": {"type": "string"},
            "anonymousId": {"type": "string"},
            "type": {"type": "string"},
            "event": {"type": "string"},
            "timestamp": {"type": "string"},
            "properties": {"type": "object"},
            "traits": {"type": "object"},
            "context": {"type": "object"},
        },
    }
    if kind == "batch":
        schema: dict[str, Any] = {"type": "object", "required": ["batch"],
                                  "properties": {"batch": {"type": "array", "items": message}}}  # fmt: skip
    else:
        schema = message
    return {"required": True, "content": {"application/json": {"schema": schema}}}
