"""The carrier adapter interface: what the service asks of a carrier, and what a carrier's webhook says.

A carrier creates a shipment for a return (its tracking number, printed as the label's Code 128) and later
reports tracking events through signed webhooks. An adapter turns both into these types; everything after
(recording events once, moving the return on-chain, the timeline) is the same for every carrier
(:mod:`ledger_service.logistics.webhooks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

from ledger_service.errors import AuthenticationError

WEBHOOK_TOLERANCE_S = 300
"""A delivery signed longer ago than this (or this far in the future) is refused: a captured one cannot be
replayed later."""


class TrackingStatus(StrEnum):
    """What a tracking event says about the parcel, in the carriers' common words."""

    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    """Delivered to its address: for a return parcel, the merchant."""
    EXCEPTION = "exception"
    """Delayed, damaged, held: recorded, moves nothing on-chain."""


class ExceptionReason(StrEnum):
    """What went wrong, when a carrier says (an ``exception`` event's ``reason``): the consumer's notice says what
    happened and what to do next from it."""

    DELAYED = "delayed"
    """Late (weather, volume, a missed connection): still on its way."""
    DAMAGED = "damaged"
    LOST = "lost"
    RETURNED_TO_SENDER = "returned_to_sender"
    """Coming back to the consumer: the return has not reached the merchant."""
    DELIVERY_FAILED = "delivery_failed"
    """The merchant's address could not be reached or refused the parcel."""
    HELD = "held"
    """Held by the carrier or customs (an address, a label or a document to fix)."""
    OTHER = "other"


class Milestone(IntEnum):
    """How far the parcel got, as far as the chain is concerned (the return's steps only ever move forward)."""

    NONE = 0
    IN_TRANSIT = 1
    """The carrier has it: ReturnsEscrow.markInTransit (a fast refund pays)."""
    DELIVERED = 2
    """The merchant has it: ReturnsEscrow.markReceived."""


MILESTONES: dict[TrackingStatus, Milestone] = {
    TrackingStatus.IN_TRANSIT: Milestone.IN_TRANSIT,
    TrackingStatus.OUT_FOR_DELIVERY: Milestone.IN_TRANSIT,
    TrackingStatus.DELIVERED: Milestone.DELIVERED,
    TrackingStatus.EXCEPTION: Milestone.NONE,
}


@dataclass(frozen=True, slots=True)
class ShipmentRequest:
    """What a carrier needs to create a return's shipment."""

    return_id: str
    label_code: str
    merchant: str
    return_address: str


@dataclass(frozen=True, slots=True)
class Shipment:
    """A created shipment: the tracking number the label prints."""

    tracking_number: str


@dataclass(frozen=True, slots=True)
class CarrierEvent:
    """One tracking event of a webhook delivery."""

    event_id: str
    tracking_number: str
    status: TrackingStatus
    occurred_at: int
    location: str | None = None
    read_point: str | None = None
    """An SGLN read point (``company.location.extension``) for the on-chain step, when the carrier knows it."""
    reason: ExceptionReason | None = None
    """What went wrong, for an ``exception`` event whose carrier says (None: not said)."""
    epc: str | None = None
    """A ``delivered`` event: the EPC URI the carrier scanned on the unit in the parcel (None: not scanned); the
    receiving step sends it to the contract's unit check."""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A verified webhook delivery."""

    delivery_id: str
    events: tuple[CarrierEvent, ...]


class WebhookSignatureError(AuthenticationError):
    """A webhook delivery without a valid signature, or signed too long ago (HTTP 401; nothing is recorded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, scheme="WebhookSignature")


class CarrierAdapter(Protocol):
    """One carrier, as the service uses it."""

    @property
    def name(self) -> str:
        """The carrier's name in LEDGER_CARRIERS and in the webhook's path."""
        ...

    def create_shipment(self, request: ShipmentRequest) -> Shipment:
        """A new shipment for the return (called once per return; a carrier's API call for real carriers)."""
        ...

    def is_tracking_number(self, text: str) -> bool:
        """Whether ``text`` is a well-formed tracking number of this carrier (its check digit holds)."""
        ...

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookDelivery:
        """The delivery, once its signature and timestamp are verified (:class:`WebhookSignatureError`
        otherwise); :class:`~ledger_service.errors.InvalidRequestError` or a 400
        :class:`~ledger_service.errors.RequestError` for a body that is not a delivery."""
        ...
