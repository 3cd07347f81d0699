"""scripts/deploy.py prices every transaction as the relayer prices its own: EIP-1559 fees from eth_feeHistory
within the network's fee cap, read again for each one, and a base fee that rose above the cap stops the deploy
with nothing more sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from brownie import accounts, web3

from ledger_service.core.networks import GWEI, default_fee_policy
from scripts.deploy import ConfigError, deploy, send, tx

FEES = replace(default_fee_policy(), max_fee_wei=3 * GWEI, priority_fee_wei=GWEI // 2)


def _base_fee(wei: int) -> None:
    """The latest block's base fee becomes ``wei`` (the next one's is derived from it, as on a real chain)."""
    web3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(wei)])
    web3.provider.make_request("evm_mine", [])


@pytest.fixture(autouse=True)
def _zero_base_fee_after() -> Iterator[None]:
    """The other modules run on anvil's zero base fee (returns-test): a raised one is not undone by a revert."""
    yield
    web3.provider.make_request("anvil_setNextBlockBaseFeePerGas", ["0x0"])


def _fees_of(start: int, sender: str) -> list[tuple[int, int]]:
    """(maxFeePerGas, maxPriorityFeePerGas) of every transaction ``sender`` sent from block ``start`` on."""
    found = []
    for number in range(start, web3.eth.block_number + 1):
        for sent in web3.eth.get_block(number, full_transactions=True)["transactions"]:
            if sent["from"].lower() == sender.lower():
                found.append((int(sent["maxFeePerGas"]), int(sent["maxPriorityFeePerGas"])))
    return found


def test_every_deploy_transaction_is_within_the_cap() -> None:
    _base_fee(2 * GWEI)  # twice the base fee plus the tip is above the 3 gwei cap: the cap must bound it
    start = web3.eth.block_number + 1
    manifest = deploy(roles={"MERCHANT_ROLE": [accounts[3].address]}, mint={}, chain_id=31337, fees=FEES)
    sent = _fees_of(start, accounts[0].address)
    assert len(sent) >= 7 and manifest["contracts"]  # four contracts, the dUSD and the grants
    assert all(max_fee <= FEES.max_fee_wei and tip <= max_fee for max_fee, tip in sent), sent
    assert sent[0][0] == FEES.max_fee_wei  # capped, not 2 * base + tip


def test_a_base_fee_above_the_cap_stops_the_next_transaction(dev_token: Any) -> None:
    owner = accounts[0]
    _base_fee(GWEI)
    params = tx(owner, FEES)
    assert params["max_fee"] <= FEES.max_fee_wei and params["priority_fee"] == FEES.priority_fee_wei
    send(dev_token.mint, accounts[4], 1, sender=owner, fees=FEES)
    _base_fee(10 * GWEI)
    nonce = owner.nonce
    with pytest.raises(ConfigError, match="rose above the fee cap"):
        send(dev_token.mint, accounts[4], 1, sender=owner, fees=FEES)
    assert owner.nonce == nonce  # nothing sent


@pytest.fixture(scope="module")
def dev_token() -> Any:
    from brownie import DevStablecoin

    return DevStablecoin.deploy(accounts[0], {"from": accounts[0], "priority_fee": GWEI})
