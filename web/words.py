"""Names of codes as people read them: business steps, dispositions and return states, as catalog texts
(English here, Chinese in ``i18n/zh.po``); the page translates them with its :class:`~web.i18n.Translator`."""

from __future__ import annotations

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.notify.email import STATES as EMAIL_STATES

CARRIER_STATUSES: dict[str, str] = {
    "in_transit": "Carrier: on its way",
    "out_for_delivery": "Carrier: out for delivery to the merchant",
    "delivered": "Carrier: delivered to the merchant",
    "exception": "Carrier: delayed or held",
}
"""A carrier tracking event's status (``ledger_service.logistics.interface.TrackingStatus``) in words."""

BIZ_STEPS: dict[BizStep, str] = {
    BizStep.COMMISSIONING: "Made and registered",
    BizStep.PACKING: "Packed",
    BizStep.SHIPPING: "Shipped",
    BizStep.RECEIVING: "Received",
    BizStep.RETAIL_SELLING: "Sold",
    BizStep.DEPARTING: "Left a site",
    BizStep.ARRIVING: "Arrived",
    BizStep.TRANSPORTING: "In transport",
    BizStep.INSPECTING: "Inspected",
    BizStep.REPAIRING: "Repaired",
    BizStep.STOCKING: "Stocked",
    BizStep.DESTROYING: "Destroyed",
    BizStep.DECOMMISSIONING: "Taken out of use",
    BizStep.HOLDING: "Held",
}

DISPOSITIONS: dict[Disposition, str] = {
    Disposition.ACTIVE: "active",
    Disposition.IN_PROGRESS: "in progress",
    Disposition.IN_TRANSIT: "in transit",
    Disposition.SELLABLE_ACCESSIBLE: "for sale",
    Disposition.SELLABLE_NOT_ACCESSIBLE: "in stock",
    Disposition.RETAIL_SOLD: "sold",
    Disposition.RETURNED: "returned",
    Disposition.DAMAGED: "damaged",
    Disposition.CONFORMANT: "passed",
    Disposition.NON_CONFORMANT: "failed",
    Disposition.RECALLED: "recalled",
    Disposition.DESTROYED: "destroyed",
    Disposition.INACTIVE: "inactive",
}

RETURN_STATES: dict[str, str] = {
    **EMAIL_STATES["en"],  # the on-chain states, in the words the consumer's e-mails use too
    "pending_review": "Waiting for the merchant",
    "request_rejected": "Request declined",
    "processing": "Being approved",
}

STATE_SENTENCES: dict[str, str] = {
    "authorized": "The merchant approved the return and put the refund in escrow.",
    "cancelled": "The return was cancelled before it shipped.",
    "expired": "The parcel did not ship by the deadline; the merchant took the deposit back.",
    "in_transit": "The carrier scanned the parcel: it is on its way back.",
    "received": "The parcel reached the merchant.",
    "accepted": "The inspection passed.",
    "rejected": "The inspection failed.",
    "disputed": "The failed inspection was disputed; an arbiter decides.",
    "resolved": "The arbiter resolved the dispute.",
    "reclaimed": "The merchant took the deposit back.",
    "consumer_claimed": "The merchant did not inspect in time; the deposit was claimed for you.",
}

MERCHANT_STATES: dict[str, str] = {
    "authorized": "Approved, waiting for the parcel",
    "cancelled": "Cancelled by the consumer",
    "expired": "Not shipped: deposit taken back",
    "in_transit": "On its way back",
    "received": "Received: inspect it",
    "accepted": "Inspection passed",
    "rejected": "Inspection failed",
    "disputed": "Disputed: an arbiter decides",
    "resolved": "Dispute resolved",
    "reclaimed": "Deposit taken back",
    "consumer_claimed": "Not inspected in time: paid to the consumer",
    "pending_review": "Waiting for your review",
}
"""Return states as the merchant reads them (:data:`RETURN_STATES` speaks to the consumer)."""

PAYOUT_SENTENCE = "The escrow paid out the deposit."
UNIT_MISMATCH_SENTENCE = "The unit received is not the one sold: an independent arbiter decides."
"""What a return's dispute means when the unit check sent it there (instead of the consumer's dispute)."""
UNKNOWN_STEP = "Recorded step"
UNKNOWN_DISPOSITION = "unknown"


def biz_step(code: int) -> str:
    try:
        return BIZ_STEPS[BizStep(code)]
    except (ValueError, KeyError):
        return UNKNOWN_STEP


def disposition(code: int) -> str:
    try:
        return DISPOSITIONS[Disposition(code)]
    except (ValueError, KeyError):
        return UNKNOWN_DISPOSITION


def return_state(state: ReturnState | str) -> str:
    name = state if isinstance(state, str) else state.name.lower()
    return RETURN_STATES.get(name, name)


def merchant_state(name: str) -> str:
    return MERCHANT_STATES.get(name, name)
