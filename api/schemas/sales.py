"""Sales: the merchant records one, the consumer gets a return token for it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from api.schemas.common import Address, Amount, Email, ItemId, Location, PlainText, RequestModel, TxPublic

Category = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class SaleCreate(RequestModel):
    """A sale of one registered item to a consumer, bound to the merchant's current policy version."""

    item_id: ItemId
    consumer: Address = Field(
        description="the buyer's account: refunds are paid to it (in mixed case its EIP-55 checksum must match)"
    )
    price: Amount = Field(description="the price in integer units of the token (the most a return refunds)")
    token: Address | None = Field(
        default=None,
        description="the ERC-20 paid with (default: the deployment's; in mixed case its EIP-55 checksum must match)",
    )
    order_ref: PlainText | None = Field(
        default=None, max_length=200, description="the merchant's order reference (its sha-256 goes on-chain)"
    )
    location: Location | None = None
    category: Category | None = Field(default=None, description="the item's category (for non-returnable ones)")
    consumer_email: Email | None = Field(
        default=None,
        description="where the consumer is told about their returns (kept off-chain, never shown again)",
    )
    consumer_lang: Literal["zh", "en"] = Field(default="en", description="the language of those e-mails")


class SalePublic(TxPublic):
    """The recorded sale and the consumer's return token (shown only in this response)."""

    item_id: str
    sale_seq: int
    policy_version: int
    consumer: str
    price: Amount
    token: str
    decimals: int | None = Field(description="the token's decimals (null if it does not say)")
    return_token: str = Field(
        description="give it to the consumer: `Authorization: ReturnToken <token>` lets them request a return"
    )
