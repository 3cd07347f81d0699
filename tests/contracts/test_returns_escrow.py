"""Policies, sales, the return lifecycle and its deadlines (contracts/ReturnsEscrow.sol).

Every payout is checked against token balances: consumer + merchant payouts equal
the deposit, and the escrow holds nothing once the return is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import accounts, chain, web3
from conftest import (
    ACCEPTED,
    ARRIVING,
    AUTHORIZED,
    CANCELLED,
    CONFORMANT,
    CONSUMER_CLAIMED,
    DAY,
    DEFAULT_POLICY,
    DISPUTED,
    EXPIRED,
    IN_TRANSIT,
    IN_TRANSIT_STATE,
    INSPECTING,
    LOCATION,
    NON_CONFORMANT,
    PRICE,
    RECEIVED,
    RECEIVING,
    RECLAIMED,
    REJECTED,
    RESOLVED,
    RETAIL_SELLING,
    RETAIL_SOLD,
    RETURNED,
    TRANSPORTING,
    ZERO32,
    item_id,
    item_uri,
    set_next_timestamp,
)
from eth_abi.abi import encode

FEE = PRICE * DEFAULT_POLICY[1] // 10_000
REPORT = b"\x44" * 32
RULING = b"\x55" * 32
EVIDENCE = b"\x66" * 32
ORDER = b"\x33" * 32


def err(name: str, *args: Any) -> str:
    """The revert message brownie decodes for custom error `name(args)`."""

    def fmt(arg: Any) -> str:
        if isinstance(arg, bytes):
            return str(bytes(arg))
        arg = getattr(arg, "address", arg)  # accounts and contracts print as lowercase hex
        return arg.lower() if isinstance(arg, str) and arg.startswith("0x") else str(arg)

    return f"{name}: " + ", ".join(fmt(a) for a in args)


def plain(values: Any) -> tuple[Any, ...]:
    """A returned struct as a tuple of plain Python values (bytes32 as bytes)."""
    return tuple(bytes(v) if isinstance(v, bytes) else v for v in values)


# Lifecycle steps, each by the account allowed to take it (accounts as in conftest).
def ship(escrow: Any, rid: bytes) -> Any:
    return escrow.markInTransit(rid, LOCATION, {"from": accounts[3]})


def receive(escrow: Any, rid: bytes, by: Any = None) -> Any:
    return escrow.markReceived(rid, LOCATION, {"from": by or accounts[3]})


def inspect(escrow: Any, rid: bytes, passed: bool) -> Any:
    return escrow.recordInspection(rid, passed, REPORT, LOCATION, {"from": accounts[4]})


def ship_and_receive(escrow: Any, rid: bytes) -> None:
    ship(escrow, rid)
    receive(escrow, rid)


def reject(escrow: Any, rid: bytes) -> Any:
    ship_and_receive(escrow, rid)
    return inspect(escrow, rid, False)


CALLS: dict[str, Callable[[Any, bytes], Any]] = {
    "cancelReturn": lambda e, rid: e.cancelReturn(rid, {"from": accounts[6]}),
    "markInTransit": ship,
    "markReceived": lambda e, rid: receive(e, rid),
    "recordInspection": lambda e, rid: inspect(e, rid, True),
    "dispute": lambda e, rid: e.dispute(rid, EVIDENCE, {"from": accounts[6]}),
    "resolveDispute": lambda e, rid: e.resolveDispute(rid, 0, RULING, {"from": accounts[5]}),
    "reclaim": lambda e, rid: e.reclaim(rid, {"from": accounts[2]}),
    "claimUninspected": lambda e, rid: e.claimUninspected(rid, {"from": accounts[6]}),
}


def holdings(token: Any, escrow: Any) -> tuple[int, int, int]:
    """(consumer, merchant, escrow) token balances."""
    return token.balanceOf(accounts[6]), token.balanceOf(accounts[2]), token.balanceOf(escrow)


def assert_moved(tx: Any, rid: bytes, previous: int, state: int, deadline: int = 0, evidence: bytes = ZERO32) -> None:
    ev = tx.events["ReturnStateChanged"]
    assert len(ev) == 1
    assert (bytes(ev["returnId"]), ev["previous"], ev["state"]) == (rid, previous, state)
    assert (ev["at"], ev["deadline"], bytes(ev["evidence"])) == (tx.timestamp, deadline, evidence)


def assert_paid(
    tx: Any, rid: bytes, before: tuple[int, int, int], after: tuple[int, int, int], to_consumer: int, to_merchant: int
) -> None:
    ev = tx.events["EscrowSettled"]
    assert len(ev) == 1
    assert bytes(ev["returnId"]) == rid
    assert (ev["consumerAmount"], ev["merchantAmount"]) == (to_consumer, to_merchant)
    assert after[0] - before[0] == to_consumer
    assert after[1] - before[1] == to_merchant
    assert before[2] - after[2] == to_consumer + to_merchant


# --- policies -------------------------------------------------------------------------------


def test_publish_policy_versions(escrow: Any, merchant2: Any) -> None:
    second = (60, 500, False, 10_000_000, 0, 10, 20, 5, b"\x22" * 32)
    assert escrow.currentPolicyVersion(merchant2) == 0
    for version, terms in ((1, DEFAULT_POLICY), (2, second)):
        tx = escrow.publishPolicy(terms, {"from": merchant2})
        assert tx.return_value == version
        ev = tx.events["PolicyPublished"]
        assert (ev["merchant"], ev["version"], ev["publishedAt"]) == (merchant2, version, tx.timestamp)
        assert plain(ev["policy"]) == terms
        assert escrow.currentPolicyVersion(merchant2) == version
    assert plain(escrow.policyOf(merchant2, 1)) == DEFAULT_POLICY
    assert plain(escrow.policyOf(merchant2, 2)) == second
    for missing in (0, 3):
        with brownie.reverts(err("EscrowPolicyMissing", merchant2)):
            escrow.policyOf(merchant2, missing)


PERIODS = ((5, "shipByDays"), (6, "inspectByDays"), (7, "disputeWindowDays"))
INVALID_FIELDS = [(0, 0, "windowDays"), (0, 366, "windowDays"), (1, 5001, "restockingFeeBps")]
INVALID_FIELDS += [(index, value, field) for index, field in PERIODS for value in (0, 91)]


@pytest.mark.parametrize(("index", "value", "field"), INVALID_FIELDS, ids=[f"{f}={v}" for _, v, f in INVALID_FIELDS])
def test_invalid_policy_field(escrow: Any, merchant2: Any, index: int, value: int, field: str) -> None:
    terms = list(DEFAULT_POLICY)
    terms[index] = value
    with brownie.reverts(err("EscrowPolicyInvalid", field)):
        escrow.publishPolicy(terms, {"from": merchant2})
    assert escrow.currentPolicyVersion(merchant2) == 0


def test_policy_limits_accepted(escrow: Any, merchant2: Any) -> None:
    escrow.publishPolicy((365, 5000, True, 0, 0, 90, 90, 90, ZERO32), {"from": merchant2})
    escrow.publishPolicy((1, 0, False, 0, 0, 1, 1, 1, ZERO32), {"from": merchant2})
    assert escrow.currentPolicyVersion(merchant2) == 2


def test_sale_keeps_policy_version(escrow: Any, token: Any, sold_item: Any, merchant: Any) -> None:
    first = sold_item(1)
    stricter = (30, 2500, False, 0, 0, 2, 3, 4, b"\x22" * 32)
    escrow.publishPolicy(stricter, {"from": merchant})
    second = sold_item(2)
    assert escrow.saleOf(first)["policyVersion"] == 1
    assert escrow.saleOf(second)["policyVersion"] == 2
    with brownie.reverts(err("EscrowFastRefundNotAllowed", second)):
        escrow.authorizeReturn(second, PRICE, True, {"from": merchant})
    for itemid, version, terms, fast in ((first, 1, DEFAULT_POLICY, True), (second, 2, stricter, False)):
        tx = escrow.authorizeReturn(itemid, PRICE, fast, {"from": merchant})
        ev = tx.events["ReturnAuthorized"]
        assert (ev["policyVersion"], ev["feeBps"], ev["fastRefund"]) == (version, terms[1], fast)
        assert ev["shipBy"] == tx.timestamp + terms[5] * DAY
        rid = bytes(tx.return_value)
        before = holdings(token, escrow)
        tx = ship(escrow, rid)
        assert_moved(tx, rid, AUTHORIZED, IN_TRANSIT_STATE, tx.timestamp + terms[6] * DAY)
        if fast:  # the first sale is refunded under version 1: fast, 10 % fee
            assert_paid(tx, rid, before, holdings(token, escrow), PRICE - FEE, FEE)
        receive(escrow, rid)
        tx = inspect(escrow, rid, False)
        assert tx.events["ReturnStateChanged"]["deadline"] == (0 if fast else tx.timestamp + terms[7] * DAY)


# --- sales ----------------------------------------------------------------------------------

SALE_CASES = ["unknown_item", "no_policy", "zero_consumer", "token_without_code", "zero_price", "already_sold"]


@pytest.mark.parametrize("case", SALE_CASES)
def test_record_sale_rejected(
    case: str, escrow: Any, token: Any, register: Any, sold_item: Any, merchant: Any, merchant2: Any, consumer: Any
) -> None:
    itemid, buyer, sale_token, price, seller = register(1), consumer, token.address, PRICE, merchant
    if case == "unknown_item":
        itemid = item_id(item_uri(999))
        expected = err("EscrowItemUnknown", itemid)
    elif case == "no_policy":
        itemid, seller = register(2, merchant2), merchant2
        expected = err("EscrowPolicyMissing", merchant2)
    elif case == "zero_consumer":
        buyer, expected = "0x" + "00" * 20, err("EscrowSaleInvalid", "consumer")
    elif case == "token_without_code":
        sale_token, expected = merchant2.address, err("EscrowSaleInvalid", "token")  # an account, no code
    elif case == "zero_price":
        price, expected = 0, err("EscrowSaleInvalid", "price")
    else:
        itemid = sold_item(3)
        expected = err("EscrowItemAlreadySold", itemid)
    with brownie.reverts(expected):
        escrow.recordSale(itemid, buyer, sale_token, price, ORDER, LOCATION, {"from": seller})
    assert escrow.saleOf(itemid)["saleSeq"] == (1 if case == "already_sold" else 0)


def test_record_sale_event_and_ledger(
    escrow: Any, ledger: Any, token: Any, policy: Any, register: Any, merchant: Any, consumer: Any
) -> None:
    itemid = register(1)
    tx = escrow.recordSale(itemid, consumer, token, PRICE, ORDER, LOCATION, {"from": merchant})
    ev = tx.events["SaleRecorded"]
    assert (bytes(ev["itemId"]), ev["merchant"], ev["consumer"], ev["saleSeq"]) == (itemid, merchant, consumer, 1)
    assert (ev["token"], ev["price"], ev["policyVersion"]) == (token, PRICE, 1)
    assert (bytes(ev["orderRef"]), ev["soldAt"]) == (ORDER, tx.timestamp)
    item_ev = tx.events["ItemEventRecorded"]
    assert (bytes(item_ev["itemId"]), item_ev["actor"], item_ev["seq"]) == (itemid, merchant, 1)
    assert (item_ev["bizStep"], item_ev["disposition"]) == (RETAIL_SELLING, RETAIL_SOLD)
    assert (bytes(item_ev["bizTransaction"]), bytes(item_ev["location"])) == (ORDER, LOCATION)
    assert ledger.itemOf(itemid)["head"] == item_ev["eventHash"]
    sale = escrow.saleOf(itemid)
    assert tuple(sale) == (consumer, tx.timestamp, 1, 0, False, False, token, PRICE, merchant, 1)


# --- lifecycle paths ------------------------------------------------------------------------


@pytest.mark.parametrize("passed", [True, False], ids=["pass", "fail"])
def test_fast_refund_paid_at_first_scan(
    passed: bool, escrow: Any, token: Any, authorized: Any, consumer: Any, merchant: Any
) -> None:
    itemid, rid = authorized(1, fast=True)
    assert token.balanceOf(escrow) == PRICE
    before = holdings(token, escrow)
    tx = ship(escrow, rid)
    inspect_by = tx.timestamp + DEFAULT_POLICY[6] * DAY
    assert_moved(tx, rid, AUTHORIZED, IN_TRANSIT_STATE, inspect_by)
    assert_paid(tx, rid, before, holdings(token, escrow), PRICE - FEE, FEE)
    assert token.balanceOf(escrow) == 0
    receive(escrow, rid)
    set_next_timestamp(inspect_by + 1)
    with brownie.reverts(err("EscrowAlreadySettled", rid)):
        escrow.claimUninspected(rid, {"from": consumer})
    paid = holdings(token, escrow)
    tx = inspect(escrow, rid, passed)  # late, but allowed: nothing is left to pay
    assert "EscrowSettled" not in tx.events
    assert_moved(tx, rid, RECEIVED, ACCEPTED if passed else REJECTED, 0, REPORT)
    assert holdings(token, escrow) == paid
    assert escrow.saleOf(itemid)["closed"]
    if not passed:
        with brownie.reverts(err("EscrowAlreadySettled", rid)):
            escrow.dispute(rid, EVIDENCE, {"from": consumer})
        with brownie.reverts(err("EscrowAlreadySettled", rid)):
            escrow.reclaim(rid, {"from": merchant})


@pytest.mark.parametrize("amount", [PRICE, PRICE // 2 + 7], ids=["full_price", "partial"])
def test_inspection_pass_pays_consumer_less_fee(amount: int, escrow: Any, token: Any, authorized: Any) -> None:
    itemid, rid = authorized(1, amount=amount)
    tx = ship(escrow, rid)
    assert "EscrowSettled" not in tx.events
    assert token.balanceOf(escrow) == amount
    assert_moved(receive(escrow, rid), rid, IN_TRANSIT_STATE, RECEIVED)
    before = holdings(token, escrow)
    tx = inspect(escrow, rid, True)
    assert_moved(tx, rid, RECEIVED, ACCEPTED, 0, REPORT)
    fee = amount * DEFAULT_POLICY[1] // 10_000
    assert_paid(tx, rid, before, holdings(token, escrow), amount - fee, fee)
    assert token.balanceOf(escrow) == 0
    assert escrow.returnOf(rid)["settled"]
    sale = escrow.saleOf(itemid)
    assert sale["closed"]
    assert not sale["returnOpen"]


@pytest.mark.parametrize("split", [0, 1, PRICE // 3, PRICE - 1, PRICE])
def test_dispute_resolved_by_arbiter_split(
    split: int, escrow: Any, token: Any, authorized: Any, consumer: Any, arbiter: Any
) -> None:
    itemid, rid = authorized(1)
    tx = reject(escrow, rid)
    assert_moved(tx, rid, RECEIVED, REJECTED, tx.timestamp + DEFAULT_POLICY[7] * DAY, REPORT)
    assert escrow.returnOf(rid)["disputeBy"] == tx.timestamp + DEFAULT_POLICY[7] * DAY
    assert "EscrowSettled" not in tx.events
    assert token.balanceOf(escrow) == PRICE
    assert_moved(escrow.dispute(rid, EVIDENCE, {"from": consumer}), rid, REJECTED, DISPUTED, 0, EVIDENCE)
    with brownie.reverts(err("EscrowInvalidAmount", PRICE + 1, PRICE)):
        escrow.resolveDispute(rid, PRICE + 1, RULING, {"from": arbiter})
    before = holdings(token, escrow)
    tx = escrow.resolveDispute(rid, split, RULING, {"from": arbiter})
    assert_moved(tx, rid, DISPUTED, RESOLVED, 0, RULING)
    assert_paid(tx, rid, before, holdings(token, escrow), split, PRICE - split)
    assert token.balanceOf(escrow) == 0
    assert escrow.saleOf(itemid)["closed"]


@pytest.mark.parametrize("ending", ["cancel", "expire"])
def test_new_return_after_cancel_or_expiry(
    ending: str, escrow: Any, token: Any, authorized: Any, consumer: Any, consumer2: Any, merchant: Any
) -> None:
    itemid, rid = authorized(1)
    if ending == "cancel":
        before = holdings(token, escrow)
        tx = escrow.cancelReturn(rid, {"from": consumer})
        assert_moved(tx, rid, AUTHORIZED, CANCELLED)
        assert_paid(tx, rid, before, holdings(token, escrow), 0, PRICE)
    else:
        set_next_timestamp(escrow.returnOf(rid)["shipBy"] + 1)
        assert escrow.reclaim(rid, {"from": merchant}).events["ReturnStateChanged"]["state"] == EXPIRED
    assert not escrow.saleOf(itemid)["returnOpen"]
    with brownie.reverts(err("EscrowItemAlreadySold", itemid)):  # the item never came back
        escrow.recordSale(itemid, consumer2, token, PRICE, ORDER, LOCATION, {"from": merchant})
    tx = escrow.authorizeReturn(itemid, PRICE, False, {"from": merchant})
    second = bytes(tx.return_value)
    assert second == bytes(escrow.returnIdOf(itemid, 1, 1))
    assert second != rid
    assert escrow.returnOf(second)["state"] == AUTHORIZED
    assert escrow.saleOf(itemid)["returnCount"] == 2
    assert token.balanceOf(escrow) == PRICE


def test_resale_after_accepted_return(escrow: Any, token: Any, authorized: Any, consumer2: Any, merchant: Any) -> None:
    itemid, rid = authorized(1)
    ship(escrow, rid)
    receive(escrow, rid)
    inspect(escrow, rid, True)
    tx = escrow.recordSale(itemid, consumer2, token, 2 * PRICE, ORDER, LOCATION, {"from": merchant})
    assert tx.events["SaleRecorded"]["saleSeq"] == 2
    sale = escrow.saleOf(itemid)
    assert (sale["consumer"], sale["price"], sale["returnCount"], sale["closed"]) == (consumer2, 2 * PRICE, 0, False)
    second = bytes(escrow.authorizeReturn(itemid, 2 * PRICE, False, {"from": merchant}).return_value)
    assert second == bytes(escrow.returnIdOf(itemid, 2, 0))
    assert escrow.returnOf(second)["consumer"] == consumer2
    assert escrow.returnOf(rid)["state"] == ACCEPTED


def test_return_id_formula_and_one_open_return(escrow: Any, authorized: Any, merchant: Any) -> None:
    itemid, rid = authorized(1)
    expected = web3.keccak(
        encode(["uint256", "address", "bytes32", "uint32", "uint8"], [chain.id, escrow.address, itemid, 1, 0])
    )
    assert rid == bytes(expected) == bytes(escrow.returnIdOf(itemid, 1, 0))
    for step in (None, ship):
        if step:
            step(escrow, rid)
        with brownie.reverts(err("EscrowReturnAlreadyOpen", itemid, rid)):
            escrow.authorizeReturn(itemid, PRICE, False, {"from": merchant})


@pytest.mark.parametrize("amount", [0, PRICE + 1])
def test_authorize_invalid_amount(amount: int, escrow: Any, sold_item: Any, merchant: Any) -> None:
    itemid = sold_item(1)
    with brownie.reverts(err("EscrowInvalidAmount", amount, PRICE)):
        escrow.authorizeReturn(itemid, amount, False, {"from": merchant})


@pytest.mark.parametrize(
    ("fast", "max_value", "amount", "allowed"),
    [
        (False, 0, PRICE, False),
        (True, 10_000_000, 10_000_001, False),
        (True, 10_000_000, 10_000_000, True),
    ],
    ids=["policy_forbids", "above_max_value", "at_max_value"],
)
def test_fast_refund_limits(
    fast: bool, max_value: int, amount: int, allowed: bool, escrow: Any, token: Any, sold_item: Any, merchant: Any
) -> None:
    terms = list(DEFAULT_POLICY)
    terms[2], terms[3] = fast, max_value
    escrow.publishPolicy(terms, {"from": merchant})
    itemid = sold_item(1)
    if not allowed:
        with brownie.reverts(err("EscrowFastRefundNotAllowed", itemid)):
            escrow.authorizeReturn(itemid, amount, True, {"from": merchant})
        assert token.balanceOf(escrow) == 0
    escrow.authorizeReturn(itemid, amount, allowed, {"from": merchant})  # without fast refund it is always allowed
    assert token.balanceOf(escrow) == amount


@pytest.mark.parametrize("by_carrier", [True, False], ids=["carrier_arrives", "merchant_receives"])
@pytest.mark.parametrize("passed", [True, False], ids=["conformant", "non_conformant"])
def test_item_history_of_a_return(
    by_carrier: bool, passed: bool, escrow: Any, ledger: Any, authorized: Any, carrier: Any, merchant: Any
) -> None:
    itemid, rid = authorized(1)
    start = ledger.itemOf(itemid)["count"]
    receiver = carrier if by_carrier else merchant
    txs = [ship(escrow, rid), receive(escrow, rid, receiver), inspect(escrow, rid, passed)]
    expected = [
        (TRANSPORTING, IN_TRANSIT, ZERO32),
        (ARRIVING if by_carrier else RECEIVING, RETURNED, ZERO32),
        (INSPECTING, CONFORMANT if passed else NON_CONFORMANT, REPORT),
    ]
    for offset, (tx, (step, disposition, document)) in enumerate(zip(txs, expected, strict=True)):
        ev = tx.events["ItemEventRecorded"]  # recorded for whoever called the escrow, not for the escrow
        assert (bytes(ev["itemId"]), ev["seq"], ev["actor"]) == (itemid, start + offset, tx.sender)
        assert (ev["bizStep"], ev["disposition"]) == (step, disposition)
        assert (bytes(ev["bizTransaction"]), bytes(ev["document"]), bytes(ev["location"])) == (rid, document, LOCATION)
    record = ledger.itemOf(itemid)
    assert (record["count"], record["head"]) == (start + 3, txs[-1].events["ItemEventRecorded"]["eventHash"])


# --- deadlines at the boundary second ------------------------------------------------------
# A deadline D allows the "by D" action while block.timestamp <= D and the "after D" action once > D.

Call = Callable[[Any, bytes], Any]  # (escrow, returnId) -> the transaction
NO_SETUP, RECLAIM, CLAIM = (lambda e, rid: None), CALLS["reclaim"], CALLS["claimUninspected"]
# name: (setup, deadline field, action, state it reaches)
BY_DEADLINE: dict[str, tuple[Call, str, Call, int]] = {
    "markInTransit-shipBy": (NO_SETUP, "shipBy", CALLS["markInTransit"], IN_TRANSIT_STATE),
    "recordInspection-inspectBy": (ship_and_receive, "inspectBy", CALLS["recordInspection"], ACCEPTED),
    "dispute-disputeBy": (reject, "disputeBy", CALLS["dispute"], DISPUTED),
}
# name: (setup, deadline field, action, state before, state after, to consumer, to merchant, item came back)
AFTER_DEADLINE: dict[str, tuple[Call, str, Call, int, int, int, int, bool]] = {
    "reclaim-Authorized": (NO_SETUP, "shipBy", RECLAIM, AUTHORIZED, EXPIRED, 0, PRICE, False),
    "claim-InTransit": (ship, "inspectBy", CLAIM, IN_TRANSIT_STATE, CONSUMER_CLAIMED, PRICE, 0, True),
    "claim-Received": (ship_and_receive, "inspectBy", CLAIM, RECEIVED, CONSUMER_CLAIMED, PRICE, 0, True),
    "reclaim-Rejected": (reject, "disputeBy", RECLAIM, REJECTED, RECLAIMED, 0, PRICE, True),
}


@pytest.mark.parametrize("late", [0, 1], ids=["at_deadline", "one_second_after"])
@pytest.mark.parametrize("case", list(BY_DEADLINE))
def test_action_by_deadline(case: str, late: int, escrow: Any, authorized: Any) -> None:
    setup, field, action, reached = BY_DEADLINE[case]
    _, rid = authorized(1)
    setup(escrow, rid)
    deadline = escrow.returnOf(rid)[field]
    assert deadline > 0
    set_next_timestamp(deadline + late)
    if late:
        with brownie.reverts(err("EscrowDeadlinePassed", rid, deadline)):
            action(escrow, rid)
    else:
        assert action(escrow, rid).events["ReturnStateChanged"]["state"] == reached


@pytest.mark.parametrize("late", [0, 1], ids=["at_deadline", "one_second_after"])
@pytest.mark.parametrize("case", list(AFTER_DEADLINE))
def test_action_after_deadline(case: str, late: int, escrow: Any, token: Any, authorized: Any) -> None:
    setup, field, action, previous, reached, to_consumer, to_merchant, came_back = AFTER_DEADLINE[case]
    itemid, rid = authorized(1)
    setup(escrow, rid)
    deadline = escrow.returnOf(rid)[field]
    assert deadline > 0
    set_next_timestamp(deadline + late)
    if not late:
        with brownie.reverts(err("EscrowDeadlineNotReached", rid, deadline)):
            action(escrow, rid)
        return
    before = holdings(token, escrow)
    tx = action(escrow, rid)
    assert_moved(tx, rid, previous, reached)
    assert_paid(tx, rid, before, holdings(token, escrow), to_consumer, to_merchant)
    assert token.balanceOf(escrow) == 0
    sale = escrow.saleOf(itemid)
    assert (sale["returnOpen"], sale["closed"]) == (False, came_back)
