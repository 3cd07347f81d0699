"""Carriers: a webhook delivery's receipt, and a return's tracking timeline (carrier events and on-chain steps)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.returns import TimelineEntryPublic
from ledger_service.logistics import EventOutcome, TrackingStatus
from ledger_service.returns.actions import ScanKind


class WebhookEventPublic(BaseModel):
    """What became of one event of the delivery."""

    event_id: str
    tracking_number: str
    status: TrackingStatus
    outcome: EventOutcome = Field(
        description="recorded; duplicate (recorded before); unknown_tracking_number or invalid_tracking_number "
        "(ignored: no shipment of ours, or a check digit that fails)"
    )


class WebhookStepPublic(BaseModel):
    """An on-chain step the delivery led to (or the contract's refusal of it)."""

    return_id: str
    tracking_number: str
    step: ScanKind
    tx_hash: str | None = None
    block_number: int | None = None
    refused: str | None = Field(default=None, description="the contract's error when it refused the step")


class WebhookReceiptPublic(BaseModel):
    """A carrier's delivery, accepted: each event's outcome and the on-chain steps taken."""

    delivery_id: str
    events: list[WebhookEventPublic]
    steps: list[WebhookStepPublic]


class TrackingEntryPublic(BaseModel):
    """One line of a return's tracking timeline."""

    source: Literal["carrier", "chain"]
    at: datetime = Field(description="the carrier's time of its event, or the block's time of an on-chain step")
    summary: str = Field(description="what happened, in words")
    status: TrackingStatus | None = Field(default=None, description="a carrier event's status")
    event_id: str | None = Field(default=None, description="a carrier event's id")
    location: str | None = Field(default=None, description="a carrier event's place, in the carrier's words")
    chain: TimelineEntryPublic | None = Field(default=None, description="an on-chain step, as in the return's timeline")


class TrackingPublic(BaseModel):
    """A return's shipment and its timeline: the carrier's events merged with the on-chain steps, by time."""

    return_id: str
    state: str = Field(description="the return's on-chain state")
    carrier: str | None = Field(default=None, description="None until the first label created the shipment")
    tracking_number: str | None = None
    data: list[TrackingEntryPublic]
    count: int
