"""Re-entry into ReturnsEscrow during a payout cannot take a second payout.

The sale token is contracts/test/ReentrantToken.sol: armed with a payload, it calls
the escrow again while the escrow transfers tokens out, and records whether that
nested call succeeded. The token holds the carrier, inspector and arbiter roles,
and in some cases it is the consumer itself, so only the reentrancy guard or the
already-updated state can stop the nested call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from brownie import ReentrantToken, accounts, chain, web3
from conftest import DAY, IN_TRANSIT_STATE, LOCATION, PRICE, RECEIVED, RECLAIMED, ZERO32
from eth_abi.abi import encode

ORDER = b"\x33" * 32
REPORT = b"\x44" * 32
FEE = PRICE // 10  # DEFAULT_POLICY: 10 % restocking fee
GUARD_ERROR = bytes(web3.keccak(text="ReentrancyGuardReentrantCall()"))[:4]


def state_error(rid: bytes, state: int) -> bytes:
    selector = bytes(web3.keccak(text="EscrowInvalidState(bytes32,uint8)"))[:4]
    return selector + encode(["bytes32", "uint8"], [rid, state])


def ship(escrow: Any, rid: bytes) -> Any:
    return escrow.markInTransit(rid, LOCATION, {"from": accounts[3]})


def receive(escrow: Any, rid: bytes) -> Any:
    return escrow.markReceived(rid, LOCATION, {"from": accounts[3]})


def inspect(escrow: Any, rid: bytes, passed: bool) -> Any:
    return escrow.recordInspection(rid, passed, REPORT, LOCATION, {"from": accounts[4]})


def after_all_deadlines(escrow: Any, rid: bytes) -> None:
    chain.sleep(40 * DAY)


class Case(NamedTuple):
    token_is_consumer: bool
    fast: bool
    setup: list[Callable[[Any, bytes], Any]]
    payload: Callable[[Any, bytes], str]  # the nested call the token makes
    trigger: Callable[[Any, bytes], Any]  # the legitimate call that pays out
    paid: tuple[int, int]  # (consumer, merchant)
    error: Callable[[bytes], bytes]  # expected revert data of the nested call


def reject(escrow: Any, rid: bytes) -> None:
    ship(escrow, rid)
    receive(escrow, rid)
    inspect(escrow, rid, False)


def dispute(escrow: Any, rid: bytes) -> None:
    escrow.dispute(rid, ZERO32, {"from": accounts[6]})


def guarded(rid: bytes) -> bytes:
    return GUARD_ERROR


CASES = {
    "consumer_claims_uninspected": Case(
        token_is_consumer=False,
        fast=False,
        setup=[ship, after_all_deadlines],
        payload=lambda e, rid: e.claimUninspected.encode_input(rid),
        trigger=lambda e, rid: e.claimUninspected(rid, {"from": accounts[6]}),
        paid=(PRICE, 0),
        error=guarded,
    ),
    "merchant_reclaims_unshipped": Case(
        token_is_consumer=False,
        fast=False,
        setup=[after_all_deadlines],
        payload=lambda e, rid: e.reclaim.encode_input(rid),
        trigger=lambda e, rid: e.reclaim(rid, {"from": accounts[2]}),
        paid=(0, PRICE),
        error=guarded,
    ),
    "fast_refund_then_consumer_claims": Case(
        token_is_consumer=True,
        fast=True,
        setup=[],
        payload=lambda e, rid: e.claimUninspected.encode_input(rid),
        trigger=ship,
        paid=(PRICE - FEE, FEE),
        error=guarded,
    ),
    "fast_refund_then_second_scan": Case(
        token_is_consumer=False,
        fast=True,
        setup=[],
        payload=lambda e, rid: e.markInTransit.encode_input(rid, LOCATION),
        trigger=ship,
        paid=(PRICE - FEE, FEE),
        error=guarded,
    ),
    "inspection_pass_then_inspection_again": Case(
        token_is_consumer=True,
        fast=False,
        setup=[ship, receive],
        payload=lambda e, rid: e.recordInspection.encode_input(rid, True, REPORT, LOCATION),
        trigger=lambda e, rid: inspect(e, rid, True),
        paid=(PRICE - FEE, FEE),
        error=guarded,
    ),
    "arbiter_resolves_then_resolves_again": Case(
        token_is_consumer=False,
        fast=False,
        setup=[reject, dispute],
        payload=lambda e, rid: e.resolveDispute.encode_input(rid, PRICE, ZERO32),
        trigger=lambda e, rid: e.resolveDispute(rid, PRICE // 4, ZERO32, {"from": accounts[5]}),
        paid=(PRICE // 4, PRICE - PRICE // 4),
        error=guarded,
    ),
    "consumer_cancels_then_cancels_again": Case(
        token_is_consumer=False,
        fast=False,
        setup=[],
        payload=lambda e, rid: e.cancelReturn.encode_input(rid),
        trigger=lambda e, rid: e.cancelReturn(rid, {"from": accounts[6]}),
        paid=(0, PRICE),
        error=guarded,
    ),
    # dispute() has no guard: the consumer (the token itself) is stopped by the state, already Reclaimed.
    "merchant_reclaims_rejected_then_consumer_disputes": Case(
        token_is_consumer=True,
        fast=False,
        setup=[reject, after_all_deadlines],
        payload=lambda e, rid: e.dispute.encode_input(rid, ZERO32),
        trigger=lambda e, rid: e.reclaim(rid, {"from": accounts[2]}),
        paid=(0, PRICE),
        error=lambda rid: state_error(rid, RECLAIMED),
    ),
}


@pytest.fixture(scope="module")
def rtoken(ledger: Any, escrow: Any, admin: Any, merchant: Any) -> Any:
    token = ReentrantToken.deploy({"from": admin})
    token.mint(merchant, 10**15, {"from": admin})
    token.approve(escrow, 2**256 - 1, {"from": merchant})
    for role in (ledger.CARRIER_ROLE(), ledger.INSPECTOR_ROLE(), ledger.ARBITER_ROLE()):
        ledger.grantRole(role, token, {"from": admin})
    return token


@pytest.fixture(scope="module")
def open_return(escrow: Any, register: Any, rtoken: Any, policy: Any, merchant: Any) -> Any:
    """open_return(n, buyer, fast) -> returnId of a return funded in ReentrantToken."""

    def _open(n: int, buyer: Any, fast: bool = False) -> bytes:
        itemid = register(n)
        escrow.recordSale(itemid, buyer, rtoken, PRICE, ORDER, LOCATION, {"from": merchant})
        return bytes(escrow.authorizeReturn(itemid, PRICE, fast, {"from": merchant}).return_value)

    return _open


@pytest.mark.parametrize("name", list(CASES))
def test_reentry_cannot_take_a_second_payout(
    name: str, escrow: Any, rtoken: Any, open_return: Any, consumer: Any, consumer2: Any, merchant: Any
) -> None:
    case = CASES[name]
    buyer = rtoken.address if case.token_is_consumer else consumer.address
    open_return(1, consumer2)  # stays open: its deposit must stay in escrow
    rid = open_return(2, buyer, case.fast)
    for step in case.setup:
        step(escrow, rid)
    rtoken.arm(escrow, case.payload(escrow, rid), {"from": accounts[9]})
    before = (rtoken.balanceOf(buyer), rtoken.balanceOf(merchant), rtoken.balanceOf(escrow))
    assert before[2] == 2 * PRICE

    tx = case.trigger(escrow, rid)

    transfers_out = sum(1 for amount in case.paid if amount)
    assert rtoken.attempts() == transfers_out  # the token did call back at every payout transfer
    assert not rtoken.lastReentrySucceeded()
    assert bytes(rtoken.lastReentryError()) == case.error(rid)
    settled = tx.events["EscrowSettled"]
    assert len(settled) == 1
    assert (settled["consumerAmount"], settled["merchantAmount"]) == case.paid
    assert rtoken.balanceOf(buyer) - before[0] == case.paid[0]
    assert rtoken.balanceOf(merchant) - before[1] == case.paid[1]
    assert rtoken.balanceOf(escrow) == PRICE  # exactly the other, still open, deposit
    assert escrow.returnOf(rid)["settled"]


def test_control_unguarded_reentry_reaches_the_escrow(
    escrow: Any, rtoken: Any, open_return: Any, consumer: Any, merchant: Any
) -> None:
    """Control: a nested call the escrow does allow (markReceived: no guard, the token is a carrier) goes
    through at the first payout transfer, and is refused by the state at the second; the fast refund
    is still paid exactly once."""
    rid = open_return(1, consumer, True)
    rtoken.arm(escrow, escrow.markReceived.encode_input(rid, LOCATION), {"from": accounts[9]})
    before = (rtoken.balanceOf(consumer), rtoken.balanceOf(merchant))
    tx = ship(escrow, rid)
    assert rtoken.attempts() == 2
    assert [ev["state"] for ev in tx.events["ReturnStateChanged"]] == [IN_TRANSIT_STATE, RECEIVED]
    assert escrow.returnOf(rid)["state"] == RECEIVED
    assert not rtoken.lastReentrySucceeded()
    assert bytes(rtoken.lastReentryError()) == state_error(rid, RECEIVED)
    assert len(tx.events["EscrowSettled"]) == 1
    assert (rtoken.balanceOf(consumer) - before[0], rtoken.balanceOf(merchant) - before[1]) == (PRICE - FEE, FEE)
    assert rtoken.balanceOf(escrow) == 0
