"""Who may call each state-changing function added for exchanges and the unit-level check.

Permission matrix, as test_escrow_permissions.py: each cell (function x account) is its own test; the
exchange, return or item a function acts on is in the state where the allowed caller's call succeeds
(checked too), so a refused call is refused for who calls it, with the matching custom error. The
ReturnsEscrow hooks for ExchangeEscrow are refused to every account (only EXCHANGE_ROLE, a contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import accounts, chain
from conftest import DAY, LOCATION, PRICE, ZERO32, err

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
REPORT = b"\x44" * 32
TERMS = (30, True, 0, ZERO32)

# function: (contract, what it acts on, accounts allowed, error for everyone else, role named by the error)
MATRIX: dict[str, tuple[str, str, tuple[str, ...], str, str]] = {
    "publishExchangeTerms": ("exchanges", "nothing", ("merchant", "merchant2"), "ExchangeNotMerchant", ""),
    "setListPrices": ("exchanges", "stocked_item", ("merchant",), "ExchangeNotMerchant", ""),
    "authorizeExchange": ("exchanges", "sold_item", ("merchant",), "ExchangeNotMerchant", ""),
    "recordExtraPayment": ("exchanges", "dearer", ("merchant",), "ExchangeNotMerchant", ""),
    "releaseReplacement": ("exchanges", "instant", ("merchant",), "ExchangeNotMerchant", ""),
    "releaseCollateral": ("exchanges", "shipped", tuple(ACCOUNTS), "", ""),
    "claimCollateral": ("exchanges", "unshipped_after_ship_by", ("merchant",), "ExchangeNotMerchant", ""),
    "markReceivedUnit": ("escrow", "shipped", ("carrier", "merchant"), "EscrowMissingRole", "CARRIER_ROLE"),
    "recordInspectionUnit": ("escrow", "received", ("inspector",), "EscrowMissingRole", "INSPECTOR_ROLE"),
    "openExchangeReturn": ("escrow", "sold_item", (), "EscrowMissingRole", "EXCHANGE_ROLE"),
    "recordExchangeSale": ("escrow", "instant", (), "EscrowMissingRole", "EXCHANGE_ROLE"),
}

# function: its arguments, given the subjects and the one the function acts on
ARGS: dict[str, Callable[[dict[str, Any], Any], tuple[Any, ...]]] = {
    "publishExchangeTerms": lambda s, t: (2, TERMS),
    "setListPrices": lambda s, t: ([t], PRICE),
    "authorizeExchange": lambda s, t: (t, s["spare"], 0, True),
    "recordExtraPayment": lambda s, t: (t, REPORT),
    "releaseReplacement": lambda s, t: (t, LOCATION),
    "releaseCollateral": lambda s, t: (t,),
    "claimCollateral": lambda s, t: (t,),
    "markReceivedUnit": lambda s, t: (t, LOCATION, s["shipped_item"]),
    "recordInspectionUnit": lambda s, t: (t, True, REPORT, LOCATION, s["received_item"]),
    "openExchangeReturn": lambda s, t: (t, accounts[2], 0),
    "recordExchangeSale": lambda s, t: (s["spare"], t, PRICE, LOCATION, accounts[2]),
}

FORBIDDEN = [(fn, who) for fn, (_, _, allowed, _, _) in MATRIX.items() for who in ACCOUNTS if who not in allowed]
ALLOWED = [(fn, who) for fn, (_, _, allowed, _, _) in MATRIX.items() for who in allowed]


def account(who: str) -> Any:
    return accounts[ACCOUNTS.index(who)]


def send(contracts: dict[str, Any], subjects: dict[str, Any], fn: str, sender: Any, *, simulate: bool = False) -> Any:
    """Calls `fn` from `sender`: a transaction, or with `simulate` an eth_call on the latest state."""
    contract, subject = MATRIX[fn][0], MATRIX[fn][1]
    method = getattr(contracts[contract], fn)
    args = ARGS[fn](subjects, subjects[subject])
    return (method.call if simulate else method)(*args, {"from": sender})


@pytest.fixture(scope="module")
def contracts(escrow: Any, exchanges: Any) -> dict[str, Any]:
    return {"escrow": escrow, "exchanges": exchanges}


@pytest.fixture(scope="module")
def subjects(
    escrow: Any,
    exchanges: Any,
    terms: Any,
    sold_item: Any,
    stocked: Any,
    merchant: Any,
    merchant2: Any,
    carrier: Any,
) -> dict[str, Any]:
    """What each call acts on; items 200 and up."""

    def exchange(n: int, diff: int, instant: bool) -> bytes:
        original, replacement = sold_item(n), stocked(n + 1, PRICE + diff)
        tx = exchanges.authorizeExchange(original, replacement, diff, instant, {"from": merchant})
        return bytes(tx.return_value)

    found: dict[str, Any] = {"nothing": ZERO32, "unshipped_after_ship_by": exchange(200, 0, True)}
    chain.sleep(8 * DAY)  # past its shipBy; the ones below start afresh
    found["stocked_item"] = stocked(210)
    found["spare"] = stocked(211)
    found["sold_item"] = sold_item(212)
    found["dearer"] = exchange(220, 1_000_000, False)
    found["instant"] = exchange(230, 0, True)
    found["shipped"] = exchange(240, -1_000_000, True)
    found["shipped_item"] = escrow.returnOf(found["shipped"])["itemId"]
    escrow.markInTransit(found["shipped"], LOCATION, {"from": carrier})
    found["received"] = exchange(250, 0, False)
    found["received_item"] = escrow.returnOf(found["received"])["itemId"]
    escrow.markInTransit(found["received"], LOCATION, {"from": carrier})
    escrow.markReceived(found["received"], LOCATION, {"from": carrier})
    # Last, so that the sales above stay bound to version 1 and its terms.
    for policy_merchant in (merchant, merchant2):  # a policy version 2 without exchange terms
        while escrow.currentPolicyVersion(policy_merchant) < 2:
            escrow.publishPolicy((30, 0, False, 0, 0, 7, 14, 7, ZERO32), {"from": policy_merchant})
    return found


@pytest.fixture(scope="module")
def roles(ledger: Any) -> dict[str, bytes]:
    return {name: bytes(getattr(ledger, name)()) for name in ("CARRIER_ROLE", "INSPECTOR_ROLE", "EXCHANGE_ROLE")}


@pytest.mark.parametrize(("fn", "who"), FORBIDDEN, ids=[f"{fn}-{who}" for fn, who in FORBIDDEN])
def test_forbidden_caller(
    fn: str, who: str, contracts: dict[str, Any], roles: dict[str, bytes], subjects: dict[str, Any]
) -> None:
    _, subject, _, error, role = MATRIX[fn]
    target, sender = subjects[subject], account(who)
    expected = err(error, sender, roles[role]) if role else err(error, target, sender)
    with brownie.reverts(expected):
        send(contracts, subjects, fn, sender, simulate=True)


@pytest.mark.parametrize(("fn", "who"), ALLOWED, ids=[f"{fn}-{who}" for fn, who in ALLOWED])
def test_allowed_caller(fn: str, who: str, contracts: dict[str, Any], subjects: dict[str, Any]) -> None:
    tx = send(contracts, subjects, fn, account(who))
    assert tx.status == 1


def test_the_exchange_role_is_what_lets_exchanges_open_returns(
    exchanges: Any, ledger: Any, admin: Any, subjects: dict[str, Any], merchant: Any
) -> None:
    role = bytes(ledger.EXCHANGE_ROLE())
    ledger.revokeRole(role, exchanges, {"from": admin})
    with brownie.reverts(err("EscrowMissingRole", exchanges, role)):
        exchanges.authorizeExchange(subjects["sold_item"], subjects["spare"], 0, False, {"from": merchant})
