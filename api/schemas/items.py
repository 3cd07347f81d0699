"""Items: delivery to the consumer, and whether a return is possible now."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Amount, Location, ReasonPublic, RequestModel, TxPublic


class DeliveryCreate(RequestModel):
    """The carrier handed the sold item to the consumer."""

    location: Location | None = None


class DeliveryPublic(TxPublic):
    """The delivery event, as sent; with ?wait=true also when the index saw it (the return window opens then)."""

    item_id: str
    delivered_at: datetime | None = None


class EligibilityPublic(BaseModel):
    """Whether the item's consumer may return it now, with every reason and what the refund would be."""

    item_id: str
    eligible: bool
    outcome: str = Field(description="approve, reject or manual_review: what a request would get now")
    reasons: list[ReasonPublic]
    deadline: datetime | None = Field(description="end of the return window (null before delivery)")
    refund_amount: Amount = Field(description="the deposit the merchant puts in escrow (the sale price)")
    restocking_fee: Amount
    refund_after_fee: Amount = Field(description="what the consumer receives once the return is accepted")
    decimals: int | None = Field(description="the sale token's decimals (null without a sale)")
    token: str | None
    fast_refund: bool = Field(description="the refund would be paid at the carrier's first scan")
    policy_version: int | None
    checked_at: datetime = Field(description="the time the rules ran at (chain time, never before the index's head)")
    indexed_block: int | None = Field(description="the index's checkpoint the answer was read at")
