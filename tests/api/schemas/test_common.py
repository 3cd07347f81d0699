"""The shared request types, without HTTP: addresses need their EIP-55 checksum when in mixed case, free text
holds no control or invisible formatting characters, request bodies refuse undeclared fields."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from api.schemas.common import Address, MultilineText, PlainText, RequestModel

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
TYPO = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"  # the last letter's case flipped
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


class Payment(RequestModel):
    to: Address
    note: PlainText = ""
    text: MultilineText = ""


def errors(**fields: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as raised:
        Payment.model_validate({"to": CHECKSUMMED, **fields})
    return [dict(e) for e in raised.value.errors()]


@pytest.mark.parametrize(
    "typed", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()], ids=["checksummed", "lower", "upper"]
)
def test_an_address_in_one_case_or_with_a_valid_checksum_is_accepted_in_checksum_form(typed: str) -> None:
    assert Payment(to=typed).to == CHECKSUMMED


def test_a_mixed_case_address_with_a_wrong_checksum_is_refused_without_confirming_the_typo() -> None:
    [error] = errors(to=TYPO)
    assert error["type"] == "address_checksum" and error["loc"] == ("to",)
    message = str(error["msg"])
    assert TYPO in message and "typo" in message
    assert to_checksum_address(TYPO) not in message  # the checksummed typo would look like a confirmation


@given(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=39))
def test_flipping_the_case_of_one_letter_of_a_checksummed_address_is_caught(raw: bytes, at: int) -> None:
    good = to_checksum_address("0x" + raw.hex())
    digits = good[2:]
    if not digits[at].isalpha() or digits.lower() == digits or digits.upper() == digits:
        return  # a digit has no case; an address whose letters all share one case carries no checksum
    flipped = "0x" + digits[:at] + digits[at].swapcase() + digits[at + 1 :]
    if flipped[2:].lower() == flipped[2:] or flipped[2:].upper() == flipped[2:]:
        return  # the flip made it single-case: accepted as unchecked, as is standard
    with pytest.raises(ValidationError, match="checksum"):
        Payment(to=flipped)


@pytest.mark.parametrize("typed", ["0x123", "me", "0x" + "g" * 40, "0x" + "1" * 41, " " + CHECKSUMMED, "1" * 42])
def test_anything_but_0x_and_40_hex_digits_is_not_an_address(typed: str) -> None:
    [error] = errors(to=typed)
    assert error["type"] == "address_format"
    assert "0x followed by 40 hexadecimal digits" in str(error["msg"])


@pytest.mark.parametrize("value", [int(CHECKSUMMED, 16), None, True, ["0x"]])
def test_an_address_must_be_a_string(value: object) -> None:
    assert errors(to=value)[0]["type"] == "string_type"


def test_a_random_accounts_address_is_accepted_as_given_in_any_standard_form() -> None:
    address = Account.create().address
    assert Payment(to=address).to == address == Payment(to=address.lower()).to


@pytest.mark.parametrize("char", list(BIDI_CONTROLS))
@pytest.mark.parametrize("field", ["note", "text"])
def test_bidi_controls_are_refused_in_free_text(field: str, char: str) -> None:
    [error] = errors(**{field: f"refund to {char}evil"})
    assert error["type"] == "text_bidi_control" and error["loc"] == (field,)
    assert f"U+{ord(char):04X}" in str(error["msg"]) and "character 11" in str(error["msg"])


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u200b", "\u2060", "\ufeff", "\u00ad", "\U000e0041", "\ud800"],
)
@pytest.mark.parametrize("field", ["note", "text"])
def test_control_and_invisible_characters_are_refused_in_free_text(field: str, char: str) -> None:
    [error] = errors(**{field: f"ok{char}"})
    assert error["type"] in {"text_control_character", "text_surrogate"}
    assert "character 3" in str(error["msg"])


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\u2028", "\u2029"])
def test_one_line_text_refuses_line_breaks(char: str) -> None:
    [error] = errors(note=f"line{char}break")
    assert error["type"] in {"text_line_break", "text_control_character"}


@pytest.mark.parametrize("char", ["\u2028", "\u2029"])
def test_multiline_text_wants_line_breaks_as_lf(char: str) -> None:
    [error] = errors(text=f"line{char}break")
    assert error["type"] == "text_line_break" and "write line breaks as LF" in str(error["msg"])


def test_multiline_text_keeps_line_breaks_and_tabs() -> None:
    assert Payment(to=CHECKSUMMED, text="first\r\nsecond\n\tthird").text == "first\r\nsecond\n\tthird"


@pytest.mark.parametrize(
    "text",
    [
        "Lieferung beschädigt, Größe 42",
        "שלום, המוצר הגיע שבור",  # right-to-left text needs no control characters
        "تم استلام المنتج تالفًا",
        "می‌خواهم برگردانم",  # Persian needs the zero-width non-joiner
        "क्षत्रिय",
        "👩‍👩‍👧 family photo",  # an emoji sequence joined by zero-width joiners
        "返品します",
    ],
)
def test_text_of_any_script_is_accepted(text: str) -> None:
    assert Payment(to=CHECKSUMMED, note=text, text=text).note == text


@given(st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))), st.sampled_from(BIDI_CONTROLS))
def test_visible_text_is_accepted_and_one_bidi_control_anywhere_is_not(text: str, char: str) -> None:
    assert Payment(to=CHECKSUMMED, note=text).note == text
    for at in {0, len(text) // 2, len(text)}:
        with pytest.raises(ValidationError, match="bidirectional control"):
            Payment(to=CHECKSUMMED, note=text[:at] + char + text[at:])


def test_a_field_that_is_not_declared_is_refused() -> None:
    [error] = errors(amount_usd="5")
    assert error["type"] == "extra_forbidden" and error["loc"] == ("amount_usd",)


def test_every_request_body_refuses_undeclared_fields() -> None:
    """Every ``...Create`` model of the API is a RequestModel (its OpenAPI schema says additionalProperties:
    false); the HTTP test walks the routes."""
    import api.schemas.items
    import api.schemas.policies
    import api.schemas.returns
    import api.schemas.sales

    creates = [
        value
        for module in (api.schemas.items, api.schemas.policies, api.schemas.returns, api.schemas.sales)
        for name, value in vars(module).items()
        if name.endswith("Create") and isinstance(value, type) and issubclass(value, BaseModel)
    ]
    assert len(creates) >= 9
    assert [c.__name__ for c in creates if not issubclass(c, RequestModel)] == []
    assert all(c.model_json_schema()["additionalProperties"] is False for c in creates)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("plain text\nsecond line\twith a tab", "plain text\nsecond line\twith a tab"),
        ("refund to \u202eexe.txt", "refund to \ufffdexe.txt"),
        ("a\u200bb\x1bc\u2066d\u2069", "a\ufffdb\ufffdc\ufffdd\ufffd"),
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
        ("👩\u200d👧, non\u00a0breaking", "👩\u200d👧, non\u00a0breaking"),
    ],
)
def test_text_stored_before_the_refusal_is_shown_neutralised(stored: str, shown: str) -> None:
    """A request stored before these characters were refused must not reorder what the merchant reads."""
    from fastapi.encoders import jsonable_encoder

    from api.schemas.common import ReasonPublic, neutralised
    from api.schemas.policies import PolicyTermsPublic
    from api.schemas.returns import ReturnPublic

    assert neutralised(stored) == shown
    request = ReturnPublic(
        id="rr_1", return_id=None, request_id="rr_1", item_id="0x", consumer="0x", merchant="0x", state="processing",
        reason_code=stored, comment=stored, reasons=[ReasonPublic(code="declined", message=stored)],
    )  # fmt: skip
    answer = jsonable_encoder(request)
    assert answer["comment"] == answer["reason_code"] == answer["reasons"][0]["message"] == shown
    assert request.comment == stored  # only what is shown changes, not the model
    terms = PolicyTermsPublic(
        non_returnable_categories=[], accepted_reasons=[], manual_review_reasons=[], manual_review_above_value="0",
        title=stored, text=stored, return_address=stored,
    )  # fmt: skip
    shown_terms = terms.model_dump(mode="json")
    assert shown_terms["text"] == shown_terms["return_address"] == shown
    assert terms.model_dump_json().count("\u202e") == 0
