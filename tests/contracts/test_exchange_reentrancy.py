"""Re-entry during an exchange's payouts cannot take a second payout.

The sale token is contracts/test/ReentrantToken.sol (as in test_reentrancy.py): armed with a payload,
it calls the paying contract again while that contract transfers tokens out. The token holds the
carrier and inspector roles, so only the reentrancy guard or the already-updated state can stop it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from brownie import ReentrantToken, accounts, chain, web3
from conftest import DAY, LOCATION, PRICE

ORDER = b"\x33" * 32
REPORT = b"\x44" * 32
DIFFERENCE = 10_000_000
GUARD_ERROR = bytes(web3.keccak(text="ReentrancyGuardReentrantCall()"))[:4]


class Case(NamedTuple):
    instant: bool
    target: str  # the contract that pays and that the token calls back
    setup: Callable[[Any, Any, bytes], Any]
    payload: Callable[[Any, Any, bytes], str]
    trigger: Callable[[Any, Any, bytes], Any]
    paid: int  # what the trigger pays out of the target, once


def shipped(escrow: Any, exchanges: Any, xid: bytes) -> None:
    escrow.markInTransit(xid, LOCATION, {"from": accounts[3]})


def received(escrow: Any, exchanges: Any, xid: bytes) -> None:
    shipped(escrow, exchanges, xid)
    escrow.markReceived(xid, LOCATION, {"from": accounts[3]})


def unshipped(escrow: Any, exchanges: Any, xid: bytes) -> None:
    chain.sleep(8 * DAY)


CASES = {
    "collateral_released_then_released_again": Case(
        instant=True,
        target="exchanges",
        setup=shipped,
        payload=lambda e, x, xid: x.releaseCollateral.encode_input(xid),
        trigger=lambda e, x, xid: x.releaseCollateral(xid, {"from": accounts[9]}),
        paid=PRICE - DIFFERENCE,
    ),
    "collateral_claimed_then_claimed_again": Case(
        instant=True,
        target="exchanges",
        setup=unshipped,
        payload=lambda e, x, xid: x.claimCollateral.encode_input(xid),
        trigger=lambda e, x, xid: x.claimCollateral(xid, {"from": accounts[2]}),
        paid=PRICE - DIFFERENCE,
    ),
    "collateral_claimed_then_released": Case(
        instant=True,
        target="exchanges",
        setup=unshipped,
        payload=lambda e, x, xid: x.releaseCollateral.encode_input(xid),
        trigger=lambda e, x, xid: x.claimCollateral(xid, {"from": accounts[2]}),
        paid=PRICE - DIFFERENCE,
    ),
    "difference_refunded_then_inspected_again": Case(
        instant=False,
        target="escrow",
        setup=received,
        payload=lambda e, x, xid: e.recordInspection.encode_input(xid, True, REPORT, LOCATION),
        trigger=lambda e, x, xid: e.recordInspection(xid, True, REPORT, LOCATION, {"from": accounts[4]}),
        paid=DIFFERENCE,
    ),
}


@pytest.fixture(scope="module")
def rtoken(ledger: Any, escrow: Any, exchanges: Any, admin: Any, merchant: Any) -> Any:
    token = ReentrantToken.deploy({"from": admin})
    token.mint(merchant, 10**15, {"from": admin})
    token.approve(escrow, 2**256 - 1, {"from": merchant})
    token.approve(exchanges, 2**256 - 1, {"from": merchant})
    for role in (ledger.CARRIER_ROLE(), ledger.INSPECTOR_ROLE()):
        ledger.grantRole(role, token, {"from": admin})
    return token


@pytest.fixture(scope="module")
def open_exchange(
    escrow: Any, exchanges: Any, register: Any, stocked: Any, rtoken: Any, terms: Any, merchant: Any
) -> Any:
    """open_exchange(n, instant) -> id of an exchange of item n, sold in ReentrantToken, for a cheaper unit."""

    def _open(n: int, instant: bool) -> bytes:
        original = register(n)
        escrow.recordSale(original, rtoken, rtoken, PRICE, ORDER, LOCATION, {"from": merchant})
        replacement = stocked(n + 1, PRICE - DIFFERENCE)
        tx = exchanges.authorizeExchange(original, replacement, -DIFFERENCE, instant, {"from": merchant})
        return bytes(tx.return_value)

    return _open


@pytest.mark.parametrize("name", list(CASES))
def test_reentry_cannot_take_a_second_payout(
    name: str, escrow: Any, exchanges: Any, rtoken: Any, open_exchange: Any, merchant: Any
) -> None:
    case = CASES[name]
    open_exchange(1, True)  # stays open: its deposit and collateral must stay where they are
    xid = open_exchange(10, case.instant)
    case.setup(escrow, exchanges, xid)
    target = {"escrow": escrow, "exchanges": exchanges}[case.target]
    held = (int(rtoken.balanceOf(escrow)), int(rtoken.balanceOf(exchanges)))
    rtoken.arm(target, case.payload(escrow, exchanges, xid), {"from": accounts[9]})

    tx = case.trigger(escrow, exchanges, xid)

    assert rtoken.attempts() == 1
    assert not rtoken.lastReentrySucceeded()
    assert bytes(rtoken.lastReentryError()) == GUARD_ERROR
    settled = tx.events["ExchangeCollateralSettled" if case.target == "exchanges" else "EscrowSettled"]
    assert len(settled) == 1
    after = (int(rtoken.balanceOf(escrow)), int(rtoken.balanceOf(exchanges)))
    if case.target == "exchanges":
        assert after == (held[0], held[1] - case.paid) and after[1] == PRICE - DIFFERENCE
    else:
        assert after == (held[0] - case.paid, held[1]) and after[0] == DIFFERENCE
