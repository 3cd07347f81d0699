"""The public authenticity check: what anyone (no login) learns about an item or a return label.

Nothing personal: consumer addresses appear masked (``0x7099…79c8``), also inside findings. A
manufacturer's address is a company's and is shown in full.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import Amount


class AuthenticityFindingPublic(BaseModel):
    """One thing the check found about an item's history or a return's records."""

    kind: str = Field(
        description="stable and machine-readable, e.g. event-missing, event-altered, hash-chain-broken, "
        "head-mismatch, count-mismatch, manufacturer-mismatch, serial-duplicated, index-mismatch",
        examples=["event-altered"],
    )
    severity: Literal["error", "warning"] = Field(
        description="error: the history or record cannot be trusted as shown; warning: nothing wrong, but "
        "something could not be checked"
    )
    message: str = Field(description="a sentence a person understands, naming the event")
    seq: int | None = Field(default=None, description="the event it is about, when it is about one")


class ItemAuthenticityPublic(BaseModel):
    """A registered item, checked against the chain."""

    item_id: str = Field(description="keccak256 of the URI it was registered under")
    uri: str = Field(
        description="the GS1 URI it was registered under", examples=["urn:epc:id:sgtin:0614141.107346.2017"]
    )
    gtin: str = Field(description="the GTIN the manufacturer registered, 14 digits", examples=["10614141073464"])
    registered_at: datetime
    manufacturer: str = Field(description="the registering company's address")
    manufacturer_role_at_registration: bool = Field(
        description="the registrant held the manufacturer role when it registered the item"
    )
    holds_manufacturer_role_now: bool
    on_chain: bool = Field(description="the contract knows the item")
    history_intact: bool = Field(description="every event as shown replays to the contract's stored head and count")
    event_count: int
    state_summary: str = Field(
        description="where the item is now, in words", examples=["sold 2026-10-02, return in transit, refund paid"]
    )
    findings: list[AuthenticityFindingPublic]


class ReturnAuthenticityPublic(BaseModel):
    """A return label, checked against the chain (its values are the chain's)."""

    rma: str = Field(description="the label code", examples=["RMA-" + "A" * 52])
    return_id: str = Field(description="the on-chain return id: 0x + 64 hex digits")
    exists_on_chain: bool
    item_id: str | None = None
    state: str | None = Field(
        default=None,
        description="authorized, cancelled, expired, in_transit, received, accepted, rejected, disputed, resolved, "
        "reclaimed or consumer_claimed",
    )
    token: str | None = None
    amount: Amount | None = Field(default=None, description="the deposit in escrow, in integer token units")
    decimals: int | None = Field(default=None, description="the token's decimals, when known")
    amount_decimal: str | None = Field(
        default=None, description="the deposit with the token's decimals applied, when known", examples=["50.000000"]
    )
    restocking_fee_bps: int | None = None
    ship_by: datetime | None = None
    inspect_by: datetime | None = None
    dispute_by: datetime | None = None
    settled: bool | None = Field(default=None, description="the deposit was paid out (once)")
    refund_paid: bool | None = Field(
        default=None, description="the consumer was refunded (null: paid out, but the split is not known here)"
    )
    refund_amount: Amount | None = None
    consumer: str | None = Field(default=None, description="masked", examples=["0x7099…79c8"])
    unit_mismatch: bool = Field(
        default=False,
        description="the unit received or inspected is not the one sold (its EPC differs); the arbiter decides",
    )
    findings: list[AuthenticityFindingPublic] = Field(default_factory=list)


class AuthenticityPublic(BaseModel):
    """The answer to one code: genuine or not, why, in sentences, and the facts behind them."""

    code: str = Field(description="the code as read")
    kind: Literal["item", "return"]
    genuine: bool = Field(
        description="item: registered by a manufacturer-role holder and its history matches the chain; "
        "return: the chain has it"
    )
    verdict: list[str] = Field(
        description="sentences a person reads, most important first",
        examples=[["Not registered on the ledger: this may be a counterfeit."]],
    )
    item: ItemAuthenticityPublic | None = Field(description="the item (for a return: the returned item)")
    return_: ReturnAuthenticityPublic | None = Field(serialization_alias="return")
    checked_at: datetime
    indexed_block: int | None = Field(description="the index's checkpoint when the check ran")
