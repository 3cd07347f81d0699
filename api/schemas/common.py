"""Types shared by the resources' schemas: ids, addresses, amounts, times, the result of a write.

Amounts travel as strings of integer token units (JSON numbers lose precision past 2^53),
with the token's ``decimals`` next to them; times as ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from ledger_service.documents.cid import Cid
from ledger_service.errors import InvalidRequestError

ItemId = Annotated[
    str,
    StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$"),
    Field(description="keccak256 of the item's GS1 URI: 0x + 64 hex digits", examples=["0x" + "ab" * 32]),
]


def _digest_of_reference(value: str) -> str:
    """A document reference as the chain's digest: ``0x`` + 64 hex stays (lower case); a CID becomes its digest."""
    if value.startswith("0x"):
        return value.lower()
    try:
        return Cid.parse(value).hex_digest
    except InvalidRequestError as exc:
        raise ValueError(str(exc)) from None


Digest = Annotated[
    str,
    StringConstraints(pattern=r"^(0x[0-9a-fA-F]{64}|Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58})$"),
    AfterValidator(_digest_of_reference),
    Field(
        description="a document reference: the CID (Qm... or bafy...) or the digest (0x + 64 hex digits) of a "
        "document stored with POST /v1/documents; the chain records the digest inside the CID"
    ),
]
Address = Annotated[
    str,
    StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$"),
    Field(description="an account address: 0x + 40 hex digits", examples=["0x" + "12" * 20]),
]
Amount = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,29}$"),
    Field(description="an amount in integer token units, as a decimal string", examples=["49990000"]),
]
Location = Annotated[
    str,
    StringConstraints(pattern=r"^[\x21-\x7e]{1,32}$"),
    Field(description="read point: the SGLN `company.location.extension`, e.g. 0614141.00777.0"),
]
MAX_UINT96 = 2**96 - 1
NO_NUL = r"^[^\x00]*$"
"""A pattern for free text in query strings (the databases' text columns refuse NUL characters)."""
REASON_MAX_LENGTH = 64
"""The longest reason code a query string may carry."""
ITEM_ID = r"0x[0-9a-fA-F]{64}"
"""An item id in a path: 0x + 64 hex digits, either case."""


def _plain_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]
"""Free text that can be stored and hashed: valid Unicode, no NUL characters."""


def utc(timestamp: int | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime (None stays None)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


def at(timestamp: int) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


class ReasonPublic(BaseModel):
    """One finding of a review: a stable code and a sentence for people."""

    code: str = Field(examples=["window_closed"])
    message: str = Field(examples=["The 30-day return window closed on 2026-11-01."])


class TxPublic(BaseModel):
    """The transaction a write sent (mined and successful)."""

    tx_hash: str = Field(description="0x + 64 hex digits")
    block_number: int = Field(description="the block it was mined in; ?wait=true answers once the index has it")
