"""What a return's events tell people: the notification types and their stable ids (no I/O).

Every notification has one id, a function of what it is about, not of where or when it was written:
``msg_`` + 32 hex of sha256(type, subject). A return reaches each state at most once (the lifecycle in
contracts/interfaces/IReturnsEscrow.sol has no cycle) and is paid out once, so (type, return id) names one
notification; a reorg that deletes and re-applies the event, a worker that retries, or the window scan that
runs again all produce the same id, which receivers de-duplicate by (Standard Webhooks' ``webhook-id``).
"""

from __future__ import annotations

import hashlib

from ledger_service.core.codes import ReturnState

RETURN_REQUESTED = "return.requested"
RETURN_APPROVED = "return.approved"
RETURN_REJECTED = "return.rejected"
RETURN_LABEL_READY = "return.label_ready"
RETURN_IN_TRANSIT = "return.in_transit"
RETURN_CARRIER_EXCEPTION = "return.carrier_exception"
RETURN_REFUND_PAID = "return.refund_paid"
RETURN_DELIVERED = "return.delivered"
RETURN_INSPECTED = "return.inspected"
RETURN_DISPUTED = "return.disputed"
RETURN_RESOLVED = "return.resolved"
RETURN_CLOSED = "return.closed"
SALE_WINDOW_CLOSING = "sale.return_window_closing"
RETURN_UNIT_MISMATCH = "return.unit_mismatch"
EXCHANGE_REQUESTED = "exchange.requested"
EXCHANGE_APPROVED = "exchange.approved"
EXCHANGE_REJECTED = "exchange.rejected"
EXCHANGE_PAYMENT_RECORDED = "exchange.payment_recorded"
EXCHANGE_REPLACEMENT_RELEASED = "exchange.replacement_released"
EXCHANGE_COLLATERAL_RELEASED = "exchange.collateral_released"
EXCHANGE_COLLATERAL_CLAIMED = "exchange.collateral_claimed"

EVENT_TYPES: tuple[str, ...] = (
    RETURN_REQUESTED,
    RETURN_APPROVED,
    RETURN_REJECTED,
    RETURN_LABEL_READY,
    RETURN_IN_TRANSIT,
    RETURN_REFUND_PAID,
    RETURN_CARRIER_EXCEPTION,
    RETURN_DELIVERED,
    RETURN_INSPECTED,
    RETURN_DISPUTED,
    RETURN_RESOLVED,
    RETURN_CLOSED,
    SALE_WINDOW_CLOSING,
    RETURN_UNIT_MISMATCH,
    EXCHANGE_REQUESTED,
    EXCHANGE_APPROVED,
    EXCHANGE_REJECTED,
    EXCHANGE_PAYMENT_RECORDED,
    EXCHANGE_REPLACEMENT_RELEASED,
    EXCHANGE_COLLATERAL_RELEASED,
    EXCHANGE_COLLATERAL_CLAIMED,
)
"""Every type a webhook may subscribe to, in the order a return usually meets them, then the unit check's and
the exchanges' (an exchange is a return of the original: its return's types come too, with the same id)."""

MERCHANT_ONLY_TYPES = frozenset({EXCHANGE_COLLATERAL_RELEASED, EXCHANGE_COLLATERAL_CLAIMED})
"""Told to the merchant's webhooks only: the instant exchange's collateral is the merchant's money."""

AUTHORIZED_TYPES = (RETURN_APPROVED, RETURN_LABEL_READY)
"""What a ReturnAuthorized tells: the return is approved, and its label can be printed at once (labels are
rendered on demand from the authorized return, GET /v1/returns/{id}/label)."""

_TRANSITION_TYPES: dict[int, tuple[str, ...]] = {
    ReturnState.CANCELLED: (RETURN_CLOSED,),
    ReturnState.EXPIRED: (RETURN_CLOSED,),
    ReturnState.IN_TRANSIT: (RETURN_IN_TRANSIT,),
    ReturnState.RECEIVED: (RETURN_DELIVERED,),
    ReturnState.ACCEPTED: (RETURN_INSPECTED, RETURN_CLOSED),
    ReturnState.REJECTED: (RETURN_INSPECTED,),
    ReturnState.DISPUTED: (RETURN_DISPUTED,),
    ReturnState.RESOLVED: (RETURN_RESOLVED, RETURN_CLOSED),
    ReturnState.RECLAIMED: (RETURN_CLOSED,),
    ReturnState.CONSUMER_CLAIMED: (RETURN_CLOSED,),
}

STATE_NAMES: dict[int, str] = {int(s): s.name.lower() for s in ReturnState}
"""A return state's name as the notifications' payloads spell it (``in_transit``)."""


def transition_types(state: int) -> tuple[str, ...]:
    """The notification types a return's transition into ``state`` produces (none for an unknown state)."""
    return _TRANSITION_TYPES.get(state, ())


def notification_id(event_type: str, subject: str) -> str:
    """The stable id of the ``event_type`` notification about ``subject`` (a return id, a request id,
    ``<item id>:<sale seq>`` for a sale's window, or ``<carrier>:<event id>`` for a carrier's exception)."""
    digest = hashlib.sha256(f"{event_type}\n{subject}".encode()).hexdigest()
    return "msg_" + digest[:32]


def carrier_event_subject(carrier: str, event_id: str) -> str:
    """The subject of a ``return.carrier_exception``: the carrier's event, recorded once. A duplicate in the
    carrier's feed has the same event id, so it is the same notification; a return that meets several
    exceptions gets one for each."""
    return f"{carrier}:{event_id}"
