"""What the consumer's answer shows of addresses and amounts (the check itself runs against a real chain in
tests/api/test_verify.py)."""

from __future__ import annotations

import pytest

from ledger_service.verification.consumer import format_amount


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [
        (50_000_000, 6, "50.000000"),
        (1, 6, "0.000001"),
        (0, 6, "0.000000"),
        (45, 0, "45"),
        (2**96 - 1, 18, "79228162514.264337593543950335"),  # exact at uint96, no float rounding
        (50_000_000, None, None),
    ],
)
def test_amounts_are_formatted_exactly_with_the_tokens_decimals(
    amount: int, decimals: int | None, text: str | None
) -> None:
    assert format_amount(amount, decimals) == text
