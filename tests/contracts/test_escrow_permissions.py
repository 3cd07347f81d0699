"""Who may call each state-changing function of ReturnsEscrow, and in which states.

Permission matrix: each cell (function x account) is its own test. The item or
return a function acts on is in the state where the allowed caller's call succeeds
(checked too), so a refused call is refused for who calls it, with the matching
custom error. State matrix: each return function called by its allowed caller in
every state that does not allow it reverts with EscrowInvalidState.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import accounts, chain
from conftest import (
    ACCEPTED,
    AUTHORIZED,
    CANCELLED,
    CONSUMER_CLAIMED,
    DAY,
    DEFAULT_POLICY,
    DISPUTED,
    EXPIRED,
    IN_TRANSIT_STATE,
    LOCATION,
    PRICE,
    RECEIVED,
    RECLAIMED,
    REJECTED,
    RESOLVED,
    ZERO32,
)

ACCOUNTS = [
    "admin",
    "manufacturer",
    "merchant",
    "carrier",
    "inspector",
    "arbiter",
    "consumer",
    "merchant2",
    "consumer2",
    "outsider",
]  # accounts[0..9], as in conftest
STATES = [
    "None",
    "Authorized",
    "Cancelled",
    "Expired",
    "InTransit",
    "Received",
    "Accepted",
    "Rejected",
    "Disputed",
    "Resolved",
    "Reclaimed",
    "ConsumerClaimed",
]  # ReturnState, by value
REPORT = b"\x44" * 32
ORDER = b"\x33" * 32

# function: (what it acts on, accounts allowed, error for everyone else, role named by EscrowMissingRole)
MATRIX: dict[str, tuple[Any, tuple[str, ...], str, str]] = {
    "publishPolicy": ("nothing", ("merchant", "merchant2"), "EscrowMissingRole", "MERCHANT_ROLE"),
    "recordSale": ("unsold_item", ("merchant",), "EscrowNotSeller", ""),
    "authorizeReturn": ("sold_item", ("merchant",), "EscrowNotMerchant", ""),
    "cancelReturn": (AUTHORIZED, ("consumer",), "EscrowNotConsumer", ""),
    "markInTransit": (AUTHORIZED, ("carrier",), "EscrowMissingRole", "CARRIER_ROLE"),
    "markReceived": (IN_TRANSIT_STATE, ("carrier", "merchant"), "EscrowMissingRole", "CARRIER_ROLE"),
    "recordInspection": (RECEIVED, ("inspector",), "EscrowMissingRole", "INSPECTOR_ROLE"),
    "dispute": (REJECTED, ("consumer",), "EscrowNotConsumer", ""),
    "resolveDispute": (DISPUTED, ("arbiter",), "EscrowMissingRole", "ARBITER_ROLE"),
    "reclaim": ("unshipped_after_ship_by", ("merchant",), "EscrowNotMerchant", ""),
    "claimUninspected": ("uninspected_after_inspect_by", ("consumer",), "EscrowNotConsumer", ""),
}

# function: its arguments, given the sale token and the item or return it acts on
ARGS: dict[str, Callable[[Any, bytes], tuple[Any, ...]]] = {
    "publishPolicy": lambda token, target: (DEFAULT_POLICY,),
    "recordSale": lambda token, target: (target, accounts[6], token, PRICE, ORDER, LOCATION),
    "authorizeReturn": lambda token, target: (target, PRICE, False),
    "cancelReturn": lambda token, target: (target,),
    "markInTransit": lambda token, target: (target, LOCATION),
    "markReceived": lambda token, target: (target, LOCATION),
    "recordInspection": lambda token, target: (target, True, REPORT, LOCATION),
    "dispute": lambda token, target: (target, ZERO32),
    "resolveDispute": lambda token, target: (target, PRICE // 2, ZERO32),
    "reclaim": lambda token, target: (target,),
    "claimUninspected": lambda token, target: (target,),
}

FORBIDDEN = [(fn, who) for fn, (_, allowed, _, _) in MATRIX.items() for who in ACCOUNTS if who not in allowed]
ALLOWED = [(fn, who) for fn, (_, allowed, _, _) in MATRIX.items() for who in allowed]

RETURN_FUNCTIONS = list(ARGS)[3:]  # the functions that act on a return
LEGAL = {
    AUTHORIZED: {"cancelReturn", "markInTransit", "reclaim"},
    IN_TRANSIT_STATE: {"markReceived", "claimUninspected"},
    RECEIVED: {"recordInspection", "claimUninspected"},
    REJECTED: {"dispute", "reclaim"},
    DISPUTED: {"resolveDispute"},
}
ILLEGAL = [
    (state, fn)
    for state in range(AUTHORIZED, CONSUMER_CLAIMED + 1)
    for fn in RETURN_FUNCTIONS
    if fn not in LEGAL.get(state, set())
]


def err(name: str, *args: Any) -> str:
    """The revert message brownie decodes for custom error `name(args)`."""

    def fmt(arg: Any) -> str:
        if isinstance(arg, bytes):
            return str(bytes(arg))
        arg = getattr(arg, "address", arg)  # accounts and contracts print as lowercase hex
        return arg.lower() if isinstance(arg, str) and arg.startswith("0x") else str(arg)

    return f"{name}: " + ", ".join(fmt(a) for a in args)


def account(who: str) -> Any:
    return accounts[ACCOUNTS.index(who)]


def send(escrow: Any, token: Any, fn: str, target: Any, sender: Any, *, simulate: bool = False) -> Any:
    """Calls `fn` on the escrow from `sender`: a transaction, or with `simulate` an eth_call on the latest
    state (same code, same revert data, and no block to undo: the refused cells run several times faster)."""
    method = getattr(escrow, fn)
    return (method.call if simulate else method)(*ARGS[fn](token, target), {"from": sender})


@pytest.fixture(scope="module")
def subjects(
    escrow: Any,
    register: Any,
    sold_item: Any,
    authorized: Any,
    carrier: Any,
    inspector: Any,
    consumer: Any,
    merchant: Any,
    arbiter: Any,
) -> dict[Any, Any]:
    """What each call acts on: a return (not fast, unpaid) in every state, keyed by state, with the
    deadline a further step needs still ahead; a return past shipBy and one past inspectBy; an unsold
    and a sold item. Items 100 and up (the other tests use low numbers)."""

    def progress(rid: bytes, state: int) -> None:
        if state >= IN_TRANSIT_STATE:
            escrow.markInTransit(rid, LOCATION, {"from": carrier})
        if RECEIVED <= state <= RECLAIMED:
            escrow.markReceived(rid, LOCATION, {"from": carrier})
        if ACCEPTED <= state <= RECLAIMED:
            escrow.recordInspection(rid, state == ACCEPTED, REPORT, LOCATION, {"from": inspector})
        if state in (DISPUTED, RESOLVED):
            escrow.dispute(rid, ZERO32, {"from": consumer})
        if state == RESOLVED:
            escrow.resolveDispute(rid, PRICE // 2, ZERO32, {"from": arbiter})

    found: dict[Any, Any] = {"nothing": ZERO32, "unsold_item": register(100), "sold_item": sold_item(101)}
    # Returns that need time to pass, (key, state to bring them to before the time passes).
    waiting = [
        (EXPIRED, AUTHORIZED),
        (RECLAIMED, REJECTED),
        (CONSUMER_CLAIMED, IN_TRANSIT_STATE),
        ("unshipped_after_ship_by", AUTHORIZED),
        ("uninspected_after_inspect_by", IN_TRANSIT_STATE),
    ]
    for n, (key, state) in enumerate(waiting):
        found[key] = authorized(102 + n)[1]
        progress(found[key], state)
    chain.sleep(20 * DAY)  # past their shipBy, inspectBy and disputeBy; the returns below start afresh
    escrow.reclaim(found[EXPIRED], {"from": merchant})
    escrow.reclaim(found[RECLAIMED], {"from": merchant})
    escrow.claimUninspected(found[CONSUMER_CLAIMED], {"from": consumer})
    for state in (AUTHORIZED, CANCELLED, IN_TRANSIT_STATE, RECEIVED, ACCEPTED, REJECTED, DISPUTED, RESOLVED):
        found[state] = authorized(110 + state)[1]
        progress(found[state], state)
    escrow.cancelReturn(found[CANCELLED], {"from": consumer})
    states = {key: escrow.returnOf(rid)["state"] for key, rid in found.items() if isinstance(key, int)}
    assert states == {state: state for state in range(AUTHORIZED, CONSUMER_CLAIMED + 1)}
    return found


@pytest.fixture(scope="module")
def roles(ledger: Any) -> dict[str, bytes]:
    return {
        name: bytes(getattr(ledger, name)())
        for name in ("MERCHANT_ROLE", "CARRIER_ROLE", "INSPECTOR_ROLE", "ARBITER_ROLE")
    }


@pytest.mark.parametrize(("fn", "who"), FORBIDDEN, ids=[f"{fn}-{who}" for fn, who in FORBIDDEN])
def test_forbidden_caller(
    fn: str, who: str, escrow: Any, token: Any, roles: dict[str, bytes], subjects: dict[Any, Any]
) -> None:
    subject, _, error, role = MATRIX[fn]
    target, sender = subjects[subject], account(who)
    expected = err(error, sender, roles[role]) if role else err(error, target, sender)
    with brownie.reverts(expected):
        send(escrow, token, fn, target, sender, simulate=True)


@pytest.mark.parametrize(("fn", "who"), ALLOWED, ids=[f"{fn}-{who}" for fn, who in ALLOWED])
def test_allowed_caller(fn: str, who: str, escrow: Any, token: Any, subjects: dict[Any, Any]) -> None:
    tx = send(escrow, token, fn, subjects[MATRIX[fn][0]], account(who))
    assert tx.status == 1


@pytest.mark.parametrize(("state", "fn"), ILLEGAL, ids=[f"{STATES[state]}-{fn}" for state, fn in ILLEGAL])
def test_illegal_transition(state: int, fn: str, escrow: Any, token: Any, subjects: dict[Any, Any]) -> None:
    rid = subjects[state]
    with brownie.reverts(err("EscrowInvalidState", rid, state)):
        send(escrow, token, fn, rid, account(MATRIX[fn][1][0]), simulate=True)


@pytest.mark.parametrize("fn", RETURN_FUNCTIONS)
def test_unknown_return(fn: str, escrow: Any, token: Any) -> None:
    rid = b"\x77" * 32
    with brownie.reverts(err("EscrowUnknownReturn", rid)):
        send(escrow, token, fn, rid, account(MATRIX[fn][1][0]), simulate=True)


def test_seller_set_by_merchant_may_sell_but_not_refund(
    escrow: Any, ledger: Any, token: Any, register: Any, policy: Any, merchant: Any, consumer: Any, outsider: Any
) -> None:
    first, second = register(1), register(2)
    ledger.setSeller(outsider, True, {"from": merchant})
    tx = escrow.recordSale(first, consumer, token, PRICE, ORDER, LOCATION, {"from": outsider})
    assert tx.events["SaleRecorded"]["merchant"] == merchant
    assert tx.events["ItemEventRecorded"]["actor"] == outsider
    with brownie.reverts(err("EscrowNotMerchant", first, outsider)):
        escrow.authorizeReturn(first, PRICE, False, {"from": outsider})
    ledger.setSeller(outsider, False, {"from": merchant})
    with brownie.reverts(err("EscrowNotSeller", second, outsider)):
        escrow.recordSale(second, consumer, token, PRICE, ORDER, LOCATION, {"from": outsider})


def test_role_changes_in_ledger_apply_at_once(
    escrow: Any, ledger: Any, authorized: Any, admin: Any, carrier: Any, outsider: Any
) -> None:
    _, rid = authorized(1)
    role = bytes(ledger.CARRIER_ROLE())
    ledger.revokeRole(role, carrier, {"from": admin})
    with brownie.reverts(err("EscrowMissingRole", carrier, role)):
        escrow.markInTransit(rid, LOCATION, {"from": carrier})
    ledger.grantRole(role, outsider, {"from": admin})
    tx = escrow.markInTransit(rid, LOCATION, {"from": outsider})
    assert tx.events["ReturnStateChanged"]["actor"] == outsider
