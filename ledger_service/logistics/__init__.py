"""Returns logistics: carriers, their shipments and tracking webhooks, on top of the returns workflow.

A carrier is an adapter (:mod:`.interface`): it creates a return's shipment (the tracking number printed on
the label, :mod:`.shipments`) and reports tracking events through signed webhooks (:mod:`.webhooks`), which
are recorded off-chain once and mapped onto the return's on-chain scans (in transit, delivered), signed by
the carrier's own account; :mod:`.tracking` merges both into the return's timeline. The built-in carrier
(:mod:`.local`) needs no account: we issue its tracking numbers and ``ledger-carrier`` (:mod:`.cli`) posts its
scans as a carrier would.

Layer: above :mod:`ledger_service.returns` (whose scans and views it uses), beside the verification and the
indexer; the API calls it.
"""

from ledger_service.logistics.interface import (
    CarrierAdapter,
    CarrierEvent,
    ExceptionReason,
    Milestone,
    Shipment,
    ShipmentRequest,
    TrackingStatus,
    WebhookDelivery,
    WebhookSignatureError,
)
from ledger_service.logistics.shipments import ensure_shipment
from ledger_service.logistics.tracking import Tracking, TrackingEntry, return_tracking
from ledger_service.logistics.webhooks import (
    ChainStep,
    DeliveryReplayedError,
    EventOutcome,
    WebhookResult,
    receive_webhook,
)

__all__ = [
    "CarrierAdapter",
    "CarrierEvent",
    "ChainStep",
    "DeliveryReplayedError",
    "EventOutcome",
    "ExceptionReason",
    "Milestone",
    "Shipment",
    "ShipmentRequest",
    "Tracking",
    "TrackingEntry",
    "TrackingStatus",
    "WebhookDelivery",
    "WebhookResult",
    "WebhookSignatureError",
    "ensure_shipment",
    "receive_webhook",
    "return_tracking",
]
