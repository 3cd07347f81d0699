"""The core's keccak256 (safe-pysha3) is Ethereum's: equal to eth_utils' (pycryptodome) on any input."""

from __future__ import annotations

from eth_utils.crypto import keccak as eth_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_service.core.keccak import keccak, keccak_text


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_keccak_equals_eth_utils(data: bytes) -> None:
    assert keccak(data) == eth_keccak(data)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_keccak_text_hashes_the_utf8_bytes(text: str) -> None:
    assert keccak_text(text) == eth_keccak(text=text)


def test_known_values() -> None:
    assert keccak(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    # the ERC-20 Transfer event's topic
    assert keccak_text("Transfer(address,address,uint256)").hex() == (
        "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    )
