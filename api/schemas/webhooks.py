"""Webhooks: a merchant subscribes a URL to notification types and reads each endpoint's deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, Field, StrictInt, StringConstraints

from api.schemas.common import RequestModel, utc
from ledger_service.store.notifications import Delivery, WebhookEndpoint

EventType = Literal[
    "return.requested",
    "return.approved",
    "return.rejected",
    "return.label_ready",
    "return.in_transit",
    "return.refund_paid",
    "return.carrier_exception",
    "return.delivered",
    "return.inspected",
    "return.disputed",
    "return.resolved",
    "return.closed",
    "sale.return_window_closing",
    "return.unit_mismatch",
    "exchange.requested",
    "exchange.approved",
    "exchange.rejected",
    "exchange.payment_recorded",
    "exchange.replacement_released",
    "exchange.collateral_released",
    "exchange.collateral_claimed",
]
"""The notification types (the core's :data:`EVENT_TYPES`; a test keeps the two equal)."""

WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^\S+$")]
WebhookSecret = Annotated[str, StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/=]{32,88}$")]


class WebhookCreate(RequestModel):
    """An endpoint of mine that hears about my returns."""

    url: WebhookUrl = Field(description="an http:// or https:// URL of your receiver (not this service)")
    event_types: list[EventType] = Field(
        default_factory=lambda: list(get_args(EventType)),
        min_length=1,
        description="what to send (default: everything)",
    )
    secret: WebhookSecret | None = Field(
        default=None,
        description="the Standard Webhooks signing secret (whsec_ + base64 of 24 to 64 bytes); default: generated",
    )


class WebhookPublic(BaseModel):
    id: str
    url: str
    event_types: list[str]
    created_at: datetime | None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookPublic:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            created_at=utc(endpoint.created_at),
        )


class WebhookCreatedPublic(WebhookPublic):
    secret: str = Field(description="verify each request's webhook-signature with it; shown only in this response")


class WebhookListPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: str = Field(description="the webhook-id header: the same on every attempt (de-duplicate by it)")
    event_type: str
    return_id: str | None
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried next")
    retry_until: datetime | None
    last_status: int | None = Field(description="your receiver's last HTTP status (null: no answer)")
    last_error: str | None
    created_at: datetime | None
    finished_at: datetime | None
    payload: str = Field(description="the request body, as signed")

    @classmethod
    def of(cls, d: Delivery) -> DeliveryPublic:
        return cls(
            id=d.id,
            webhook_id=d.notification_id,
            event_type=d.event_type,
            return_id=d.return_id,
            state=d.state,  # type: ignore[arg-type]
            attempts=d.attempts,
            next_attempt_at=utc(d.next_attempt_at) if d.state == "pending" else None,
            retry_until=utc(d.retry_until),
            last_status=d.last_status,
            last_error=d.last_error,
            created_at=utc(d.created_at),
            finished_at=utc(d.finished_at),
            payload=d.body,
        )


class DeliveryListPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int


class ReplayCreate(RequestModel):
    delivery_id: StrictInt | None = Field(
        default=None, ge=1, description="one delivery to send again; default: every dead-lettered one"
    )


class ReplayPublic(BaseModel):
    replayed: int = Field(description="deliveries due again now (same webhook-id and body)")
