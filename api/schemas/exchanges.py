"""Exchanges: the consumer's request, the eligibility answer's variants, an exchange with its timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints

from api.schemas.common import (
    Amount,
    ItemId,
    MultilineText,
    PlainText,
    ReasonPublic,
    RequestModel,
    ShownText,
    TxPublic,
)
from api.schemas.returns import ReasonCode, ReturnPublic

SignedAmount = Annotated[
    str,
    StringConstraints(pattern=r"^-?[0-9]{1,29}$"),
    Field(
        description="a signed amount in integer token units, as a decimal string: > 0 the consumer pays it, "
        "< 0 the consumer gets it back",
        examples=["-5000000"],
    ),
]


class ExchangeCreate(RequestModel):
    """A consumer's request to exchange the item its return token names for another unit of the merchant's."""

    item_id: ItemId | None = Field(default=None, description="optional: must be the token's item if given")
    replacement_item_id: ItemId = Field(
        description="the unit wanted instead: one of GET /v1/items/{id}/eligibility/exchange's variants"
    )
    reason_code: ReasonCode = Field(description="why, e.g. wrong_size", examples=["wrong_size"])
    comment: MultilineText | None = Field(default=None, max_length=2000)
    instant: StrictBool = Field(
        default=False,
        description="ship the replacement at once, before the original ships (if the merchant's terms offer it)",
    )
    price_difference: SignedAmount | None = Field(
        default=None,
        description="optional: the difference the consumer agreed to (the replacement's list price minus the price "
        "paid); refused if the merchant's recorded prices give another",
    )


class ExchangeNote(RequestModel):
    """The merchant's note when rejecting a queued exchange."""

    note: Annotated[PlainText, StringConstraints(max_length=500)] | None = None


class ExchangeApproval(RequestModel):
    """The merchant's choice when approving a queued exchange (optional)."""

    instant: StrictBool | None = Field(
        default=None,
        description="ship the replacement now against collateral (true) or at the original's first carrier scan "
        "(false); leave out for what the consumer asked. Instant needs the terms to offer it",
    )


class PaymentCreate(RequestModel):
    """The merchant records the consumer's payment of a dearer replacement (made off-chain, as sales are paid)."""

    payment_ref: Annotated[PlainText, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the merchant's own reference of the payment; only its keccak256 goes on-chain",
        examples=["PAY-2026-000123"],
    )


class VariantPublic(BaseModel):
    """A unit the item can be exchanged for now."""

    item_id: str
    uri: str = Field(description="the unit's EPC URI")
    gtin: int
    category: ShownText | None = Field(description="the merchant's category of the unit")
    list_price: Amount = Field(description="the merchant's recorded list price")
    price_difference: SignedAmount


class ExchangeEligibilityPublic(BaseModel):
    """Whether the item's consumer may exchange it now, why (not), and for which units."""

    item_id: str
    eligible: bool
    outcome: str = Field(description="approve, reject or manual_review: what an exchange request would get now")
    reasons: list[ReasonPublic]
    deadline: datetime | None = Field(description="end of the exchange window (null before delivery)")
    window_days: int | None = Field(description="the exchange window of the sale's policy version")
    instant_offered: bool = Field(description="an instant exchange (replacement before the original ships) is offered")
    policy_version: int | None
    price: Amount | None = Field(description="what the consumer paid")
    token: str | None
    decimals: int | None
    variants: list[VariantPublic] = Field(
        description="the merchant's units in the item's product group (the same manufacturer, without units the "
        "merchant put in another category) that are in stock, unsold, not held for another exchange and priced"
    )
    checked_at: datetime


class ExchangeTimelineEntryPublic(BaseModel):
    """One step of an exchange: its request and decision, the exchange's own events and its return's steps."""

    kind: str = Field(
        description="requested, decided, exchange_authorized, extra_payment_recorded, replacement_released, "
        "collateral_settled, or a step of the original's return (authorized, state_changed, settled, item_event)"
    )
    at: datetime | None = Field(description="chain time (the request's: wall clock); null if not known")
    block_number: int | None = None
    tx_hash: str | None = None
    summary: str


class ExchangePublic(BaseModel):
    """An exchange (on-chain) or its request that has none yet (queued, rejected, being processed)."""

    id: str = Field(description="the exchange id (0x..., also its return's id) or, without one, the request id")
    exchange_id: str | None
    request_id: str | None
    item_id: str = Field(description="the original, sold item")
    replacement_item_id: str
    consumer: str | None
    merchant: str
    state: str = Field(
        description="pending_review, request_rejected or processing without an exchange; else authorized, "
        "released (the replacement's sale is recorded), or the original's return ended: cancelled or expired"
    )
    outcome: str | None = None
    reasons: list[ReasonPublic] = Field(default_factory=list)
    instant: bool | None = None
    token: str | None = None
    decimals: int | None = None
    replacement_price: Amount | None = None
    price_difference: SignedAmount | None = None
    collateral: Amount | None = None
    extra_paid: bool | None = None
    released: bool | None = None
    collateral_settled: bool | None = None
    requested_at: datetime | None = None
    return_: ReturnPublic | None = Field(
        default=None,
        serialization_alias="return",
        description="the original's return (its state, deadlines, deposit)",
    )
    timeline: list[ExchangeTimelineEntryPublic] | None = Field(
        default=None, description="only on GET /v1/exchanges/{id}"
    )


class ExchangeListPublic(BaseModel):
    data: list[ExchangePublic]
    count: int


class ExchangeDecisionPublic(BaseModel):
    """The answer to an exchange request (or to the merchant's approval of a queued one)."""

    request_id: str
    item_id: str
    replacement_item_id: str
    outcome: str
    reasons: list[ReasonPublic]
    exchange_id: str | None = Field(description="the exchange's id, also the original's return id (the RMA)")
    tx_hash: str | None = Field(description="the authorization")
    block_number: int | None
    price_difference: SignedAmount | None = None
    instant: bool
    released_tx_hash: str | None = Field(
        default=None, description="the replacement's release, when it was due at once (an instant exchange)"
    )
    deadline: datetime | None = Field(default=None, description="end of the exchange window")
    exchange: ExchangePublic | None = Field(default=None, description="with ?wait=true, the exchange as indexed")


class ExchangeWritePublic(TxPublic):
    """A merchant's step on an exchange, and what was due after it."""

    exchange_id: str
    released_tx_hash: str | None = None
    collateral_tx_hash: str | None = None
    exchange: ExchangePublic | None = None


class ExchangeFollowUpPublic(BaseModel):
    """What was due on an exchange and was sent now (nulls: nothing was due)."""

    exchange_id: str
    released_tx_hash: str | None
    collateral_tx_hash: str | None
    exchange: ExchangePublic | None = None


class ExchangeTermsCreate(RequestModel):
    """The merchant's exchange terms for a version of its return policy (published once, never changed)."""

    window_days: StrictInt = Field(ge=1, le=365, description="days from delivery to ask for an exchange")
    instant: StrictBool = Field(description="offer instant exchanges (the replacement before the original ships)")
    instant_max_value: Amount = Field(
        default="0", description="largest sale price eligible for an instant exchange (0: no limit)"
    )
    policy_version: StrictInt | None = Field(
        default=None, ge=1, le=2**32 - 1, description="the policy version they belong to (default: the current one)"
    )


class ExchangeTermsPublic(TxPublic):
    policy_version: int


class ListPricesCreate(RequestModel):
    """The list price of some of the merchant's units (the price an exchange's difference is computed from)."""

    item_ids: list[ItemId] = Field(min_length=1, max_length=200)
    price: Amount = Field(description="in integer units of the sales' token; 0: not offered as a replacement")
    category: Annotated[PlainText, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="optional: the units' category (as a sale's): a sold item's variants leave out other categories",
        examples=["shoes"],
    )
