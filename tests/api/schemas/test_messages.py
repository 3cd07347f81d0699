"""Sentences for pydantic's own validation errors: what was expected and what came, quoted as JSON."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field, StrictBool, StrictInt, ValidationError

from api.schemas.common import RequestModel
from api.schemas.messages import issue_message, shown


class Policy(RequestModel):
    window_days: StrictInt
    fast_refund: StrictBool
    title: str = ""
    kind: Literal["in_transit", "delivered_to_merchant"] = "in_transit"
    reasons: list[str] = Field(default_factory=list)


def messages(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        Policy.model_validate({"window_days": 30, "fast_refund": False, **fields})
    return {".".join(map(str, e["loc"])): issue_message(e) for e in raised.value.errors()}


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"window_days": True}, {"window_days": "expected a whole number, not true"}),
        ({"window_days": "30"}, {"window_days": 'expected a whole number, not "30"'}),
        ({"window_days": 30.0}, {"window_days": "expected a whole number, not 30.0"}),
        ({"fast_refund": "yes"}, {"fast_refund": 'expected true or false, not "yes"'}),
        ({"fast_refund": 1}, {"fast_refund": "expected true or false, not 1"}),
        ({"title": 5}, {"title": "expected a string (in double quotes), not 5"}),
        ({"kind": 5}, {"kind": "expected 'in_transit' or 'delivered_to_merchant', not 5"}),
        ({"reasons": "damaged"}, {"reasons": 'expected a JSON array, not "damaged"'}),
        ({"windows_days": 30}, {"windows_days": 'unknown field "windows_days": it is not part of this request; '
                                "check its spelling (the fields are at /docs)"}),
    ],
)  # fmt: skip
def test_each_message_says_what_was_expected_and_what_came(fields: dict[str, object], said: dict[str, str]) -> None:
    assert messages(**fields) == said


def test_a_missing_field_is_named_required() -> None:
    with pytest.raises(ValidationError) as raised:
        Policy.model_validate({"fast_refund": True})
    assert [issue_message(e) for e in raised.value.errors()] == ["this field is required"]


def test_a_long_input_is_shortened() -> None:
    assert len(shown("x" * 10_000)) == 40 and shown("x" * 10_000).endswith("…")
    assert shown(object()).startswith("<object")


def test_other_errors_keep_their_own_sentence() -> None:
    error = {"type": "address_checksum", "loc": ("body", "consumer"), "msg": "the EIP-55 checksum ...", "input": "x"}
    assert issue_message(error) == "the EIP-55 checksum ..."
