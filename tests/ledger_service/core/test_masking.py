"""What a label or the verify page prints of a person: a wallet address to its ends, a name to initials."""

from __future__ import annotations

import pytest

from ledger_service.core.masking import mask_address, name_initials


def test_addresses_are_masked_to_their_ends() -> None:
    assert mask_address("0x70997970c51812dc3a010c7d01b50e0d17dc79c8") == "0x7099…79c8"


@pytest.mark.parametrize(
    ("name", "initials"),
    [
        ("Zhiwei Wang", "Z. W."),
        ("  anne   marie  o'neil ", "A. M. O."),
        ("Madonna", "M."),
        ("张伟", "张*"),
        ("王志伟", "王**"),
        ("欧阳娜娜", "欧阳**"),
        ("欧阳", "欧*"),  # a two-character name: the compound surname would be the whole name
        ("王 志伟", "王**"),
        ("やまだ", "や**"),
        ("", ""),
    ],
)
def test_names_become_initials(name: str, initials: str) -> None:
    assert name_initials(name) == initials
