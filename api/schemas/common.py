"""Types shared by the resources' schemas: ids, addresses, amounts, text, times, the result of a write.

Amounts travel as strings of integer token units (JSON numbers lose precision past 2^53),
with the token's ``decimals`` next to them; times as ISO 8601 in UTC.

Requests are read strictly, so that what the service acts on is what the client meant:
- every request body is a :class:`RequestModel`: a field it does not declare is refused, not ignored;
- counts and booleans are :data:`~pydantic.StrictInt` / :data:`~pydantic.StrictBool` (FastAPI validates
  the parsed JSON in Python mode, where ``true`` would count as 1 and ``"yes"`` as true);
- an :data:`Address` in mixed case must carry a valid EIP-55 checksum (all lower or all upper case
  carries none, as is standard), and is handed on in checksum form;
- free text that other parties read (:data:`PlainText`, :data:`MultilineText`) holds no control
  characters and no invisible format characters (bidi overrides, isolates, zero-width spaces).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from ledger_service.documents.cid import Cid
from ledger_service.errors import InvalidRequestError


class RequestModel(BaseModel):
    """The base of every request body: an undeclared field is a 422 (a misspelt optional field would
    otherwise be dropped silently, and the request run without it)."""

    model_config = ConfigDict(extra="forbid")


ItemId = Annotated[
    str,
    StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$"),
    Field(description="keccak256 of the item's GS1 URI: 0x + 64 hex digits", examples=["0x" + "ab" * 32]),
]


def _cid(value: str) -> Cid:
    try:
        return Cid.parse(value)
    except InvalidRequestError as exc:  # pydantic reports a ValueError as the field's problem
        raise ValueError(str(exc)) from None


def _digest_of_reference(value: str) -> str:
    """A document reference as the chain's digest: ``0x`` + 64 hex stays (lower case); a CID becomes its digest."""
    return value.lower() if value.startswith("0x") else _cid(value).hex_digest


Digest = Annotated[
    str,
    StringConstraints(pattern=r"^(0x[0-9a-fA-F]{64}|Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58})$"),
    AfterValidator(_digest_of_reference),
    Field(
        description="a document reference: the CID (Qm... or bafy...) or the digest (0x + 64 hex digits) of a "
        "document stored with POST /v1/documents; the chain records the digest inside the CID"
    ),
]

DocumentCid = Annotated[
    str,
    StringConstraints(pattern=r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58})$"),
    AfterValidator(lambda value: _cid(value).v0),
    Field(description="the CID (Qm... or bafy...) of a document stored with POST /v1/documents; answered as CIDv0"),
]

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_ADDRESS = re.compile(ADDRESS_PATTERN)


def checksummed_address(value: Any) -> Any:
    """An account address in EIP-55 checksum form; :class:`PydanticCustomError` if it is not 0x + 40 hex
    digits, or if it is in mixed case and its checksum does not match. Anything but a string is passed on
    (the ``str`` validation after this one refuses it)."""
    if not isinstance(value, str):
        return value
    if not _ADDRESS.fullmatch(value):
        raise PydanticCustomError("address_format", "expected an account address: 0x followed by 40 hexadecimal digits")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        # Not the checksummed form of the input: that would confirm the typo the checksum just caught.
        raise PydanticCustomError(
            "address_checksum",
            "the EIP-55 checksum of {address} is wrong: the address may contain a typo; copy it again from "
            "its source (money sent to a mistyped address is lost)",
            {"address": value},
        )
    return str(to_checksum_address(value))


Address = Annotated[
    str,
    StringConstraints(pattern=ADDRESS_PATTERN),
    BeforeValidator(checksummed_address),
    Field(
        description="an account address: 0x + 40 hex digits, all lower case, all upper case, or with a valid "
        "EIP-55 checksum (mixed case); a mixed-case address with a wrong checksum is refused",
        examples=["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"],
    ),
]
"""An address a request sends (checked, then handed on in checksum form)."""
AddressPublic = Annotated[
    str,
    StringConstraints(pattern=ADDRESS_PATTERN),
    Field(description="an account address: 0x + 40 hex digits", examples=["0x" + "12" * 20]),
]
"""An address an answer shows (as the index holds it: lower case)."""
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
ScannedEpc = Annotated[
    str,
    StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$"),
    Field(
        description="the unit's EPC URI as scanned (SGTIN URN or GS1 Digital Link); its keccak256 is the item id",
        examples=["urn:epc:id:sgtin:0614141.107346.2017"],
    ),
]
MAX_UINT96 = 2**96 - 1
NO_NUL = r"^[^\x00]*$"
"""A pattern for free text in query strings (the databases' text columns refuse NUL characters)."""
REASON_MAX_LENGTH = 64
"""The longest reason code a query string may carry."""
ITEM_ID = r"0x[0-9a-fA-F]{64}"
"""An item id in a path: 0x + 64 hex digits, either case."""
_DIGITS = re.compile(r"[0-9]{1,9}")


def _written_in_digits(value: Any) -> Any:
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise PydanticCustomError("int_parsing", "expected a whole number written in digits, e.g. 50")
    return value


def _true_or_false(value: Any) -> Any:
    if isinstance(value, str) and value not in ("true", "false"):
        raise PydanticCustomError("bool_parsing", "expected true or false")
    return value


DIGITS_ONLY = BeforeValidator(_written_in_digits)
"""For a whole number in a query string, after its ``Query(...)``: digits only (not ``5.0``, ``1_000`` or
`` 5``, which lax parsing accepts): ``Annotated[int, Query(ge=1), DIGITS_ONLY]``."""
TRUE_OR_FALSE = BeforeValidator(_true_or_false)
"""For a boolean in a query string, after its ``Query(...)``: ``true`` or ``false`` (not ``yes``, ``on`` or
``1``, which lax parsing accepts)."""

# ---- free text --------------------------------------------------------------------------------------------

_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_JOINERS = frozenset("\u200c\u200d")
"""Zero-width (non-)joiners: invisible, but needed to write Persian, Indic scripts and emoji sequences."""
_LINE_BREAKS = frozenset("\n\r\t")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _unsafe_character(value: str, *, multiline: bool) -> tuple[int, str] | None:
    """(position, character) of the first character that must not be in ``value``, or None."""
    for position, char in enumerate(value):
        if multiline and char in _LINE_BREAKS:
            continue
        if char in _JOINERS:
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return position, char
    return None


def _refusal(position: int, char: str, *, multiline: bool) -> PydanticCustomError:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    what = f"{code} {name}" if name else code
    at = {"character": what, "position": position + 1}
    if char in _BIDI_CONTROLS:
        return PydanticCustomError(
            "text_bidi_control",
            "must not contain the bidirectional control {character} (character {position}): it makes text "
            "display in another order than it is stored; remove it",
            at,
        )
    if char in _LINE_BREAKS:
        return PydanticCustomError(
            "text_line_break",
            "must be one line: remove the line break or tab {character} (character {position})",
            at,
        )
    if unicodedata.category(char) in ("Zl", "Zp"):
        return PydanticCustomError(
            "text_line_break",
            "must not contain the separator {character} (character {position}): "
            + ("write line breaks as LF or CR LF" if multiline else "this field is one line"),
            at,
        )
    if unicodedata.category(char) == "Cs":
        return PydanticCustomError(
            "text_surrogate", "must be valid Unicode text: a lone surrogate {character} is at character {position}", at
        )
    kind = "invisible formatting character" if unicodedata.category(char) == "Cf" else "control character"
    allowed = " (line breaks and tabs are allowed)" if multiline else ""
    return PydanticCustomError(
        "text_control_character",
        f"must not contain the {kind} {{character}} (character {{position}}): it is not shown as text; remove "
        f"it{allowed}",
        at,
    )


def _one_line(value: str) -> str:
    found = _unsafe_character(value, multiline=False)
    if found is not None:
        raise _refusal(*found, multiline=False)
    return value


def _lines(value: str) -> str:
    found = _unsafe_character(value, multiline=True)
    if found is not None:
        raise _refusal(*found, multiline=True)
    return value


def neutralised(value: str) -> str:
    """``value`` with every character :data:`MultilineText` refuses replaced by U+FFFD (the replacement
    character), so that text stored before those characters were refused cannot reorder what is shown."""
    if value.isprintable():  # C speed; false for every refused character (and for line breaks, NBSP, ...)
        return value
    return "".join(
        "\ufffd"
        if char not in _LINE_BREAKS and char not in _JOINERS and unicodedata.category(char) in _REFUSED_CATEGORIES
        else char
        for char in value
    )


PlainText = Annotated[str, AfterValidator(_one_line)]
"""One line of free text that other parties read: no control characters (line breaks and tabs included),
no invisible formatting characters (bidi overrides and isolates, zero-width spaces, ...), no lone
surrogates."""
MultilineText = Annotated[str, AfterValidator(_lines)]
""":data:`PlainText` that may span lines: line breaks (LF, CR) and tabs are allowed."""
ShownText = Annotated[str, PlainSerializer(neutralised, return_type=str)]
"""Free text an answer shows to other parties than its author, as :func:`neutralised`."""


def utc(timestamp: int | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime (None stays None)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


def at(timestamp: int) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


class ReasonPublic(BaseModel):
    """One finding of a review: a stable code and a sentence for people (or the merchant's note)."""

    code: ShownText = Field(examples=["window_closed"])
    message: ShownText = Field(examples=["The 30-day return window closed on 2026-11-01."])


class TxPublic(BaseModel):
    """The transaction a write sent (mined and successful)."""

    tx_hash: str = Field(description="0x + 64 hex digits")
    block_number: int = Field(description="the block it was mined in; ?wait=true answers once the index has it")


def _checked_email(value: str) -> str:
    """An e-mail address as email-validator normalises it (syntax only: no DNS lookup while answering)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"not an e-mail address: {exc}") from None


Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^\s@]+@[^\s@]+$"),
    AfterValidator(_checked_email),
    Field(description="an e-mail address (kept off-chain, never shown again)", examples=["buyer@example.com"]),
]
