"""ExchangeEscrow: exchange terms, list prices, every exchange path, its deadlines at the boundary
second, and every refusal of a bad exchange with its custom error.

An exchange is a return of the original in ReturnsEscrow (same id): the tests drive the original's
return with the escrow's own calls and check what the exchange adds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import chain
from conftest import (
    AUTHORIZED,
    CANCELLED,
    DAY,
    DEFAULT_TERMS,
    DESTROYED,
    DESTROYING,
    EXPIRED,
    HOLDING,
    IN_PROGRESS,
    IN_TRANSIT_STATE,
    LOCATION,
    PRICE,
    RECALLED,
    RETAIL_SELLING,
    RETAIL_SOLD,
    SHIPPING,
    ZERO32,
    err,
    event_input,
    set_next_timestamp,
)

REPORT = b"\x44" * 32
PAYMENT = b"\x55" * 32
SHIP_BY_DAYS = 7  # DEFAULT_POLICY


@pytest.fixture(autouse=True)
def setup(terms: Any) -> None:
    pass


def plain(values: Any) -> tuple[Any, ...]:
    """A returned struct as a tuple of plain Python values (bytes32 as bytes)."""
    return tuple(bytes(v) if isinstance(v, bytes) else v for v in values)


def ship(escrow: Any, xid: bytes, carrier: Any) -> Any:
    return escrow.markInTransit(xid, LOCATION, {"from": carrier})


def balances(token: Any, *holders: Any) -> list[int]:
    return [int(token.balanceOf(h)) for h in holders]


def authorize(exchanges: Any, merchant: Any, original: bytes, replacement: bytes, diff: int, instant: bool) -> bytes:
    tx = exchanges.authorizeExchange(original, replacement, diff, instant, {"from": merchant})
    return bytes(tx.return_value)


# ---- terms and prices ------------------------------------------------------------------------------


def test_terms_are_bound_to_a_policy_version_and_never_change(exchanges: Any, escrow: Any, merchant: Any) -> None:
    assert plain(exchanges.exchangeTermsOf(merchant, 1)) == DEFAULT_TERMS
    with brownie.reverts(err("ExchangeTermsAlreadyPublished", merchant, 1)):
        exchanges.publishExchangeTerms(1, DEFAULT_TERMS, {"from": merchant})
    with brownie.reverts(err("ExchangeTermsMissing", merchant, 2)):
        exchanges.publishExchangeTerms(2, DEFAULT_TERMS, {"from": merchant})  # no policy version 2 yet
    with brownie.reverts(err("ExchangeTermsMissing", merchant, 0)):
        exchanges.publishExchangeTerms(0, DEFAULT_TERMS, {"from": merchant})


@pytest.mark.parametrize("window", [0, 366])
def test_terms_window_out_of_range(exchanges: Any, escrow: Any, merchant2: Any, window: int) -> None:
    escrow.publishPolicy((30, 0, False, 0, 0, 7, 14, 7, ZERO32), {"from": merchant2})
    with brownie.reverts(err("ExchangeTermsInvalid", "windowDays")):
        exchanges.publishExchangeTerms(1, (window, False, 0, ZERO32), {"from": merchant2})


def test_terms_event(exchanges: Any, escrow: Any, merchant2: Any) -> None:
    escrow.publishPolicy((30, 0, False, 0, 0, 7, 14, 7, ZERO32), {"from": merchant2})
    tx = exchanges.publishExchangeTerms(1, (365, False, 7, ZERO32), {"from": merchant2})
    assert plain(tx.events["ExchangeTermsPublished"]["terms"]) == (365, False, 7, ZERO32)


def test_list_price_only_by_the_merchant_of_record(
    exchanges: Any, register: Any, merchant: Any, merchant2: Any
) -> None:
    itemid = register(900)
    tx = exchanges.setListPrices([itemid], 123, {"from": merchant})
    assert tx.events["ListPriceSet"]["price"] == 123
    assert exchanges.listPriceOf(itemid) == 123
    with brownie.reverts(err("ExchangeNotMerchant", itemid, merchant2)):
        exchanges.setListPrices([itemid], 1, {"from": merchant2})


# ---- paths -----------------------------------------------------------------------------------------


def test_standard_exchange_cheaper_replacement(
    exchanges: Any,
    escrow: Any,
    ledger: Any,
    token: Any,
    sold_item: Any,
    stocked: Any,
    merchant: Any,
    consumer: Any,
    carrier: Any,
    inspector: Any,
) -> None:
    original = sold_item(1)
    replacement = stocked(2, PRICE - 10_000_000)
    escrow.publishPolicy((10, 0, False, 0, 0, 3, 3, 3, ZERO32), {"from": merchant})  # later sales: version 2
    before = balances(token, merchant, consumer, escrow, exchanges)
    tx = exchanges.authorizeExchange(original, replacement, -10_000_000, False, {"from": merchant})
    xid = bytes(tx.return_value)
    assert tx.events["ReturnAuthorized"]["amount"] == 10_000_000
    assert tx.events["ReturnAuthorized"]["feeBps"] == 0  # no restocking fee on an exchange
    authorized = tx.events["ExchangeAuthorized"]
    assert (authorized["priceDifference"], authorized["collateral"], authorized["instant"]) == (-10_000_000, 0, False)
    assert balances(token, merchant, consumer, escrow, exchanges) == [
        before[0] - 10_000_000,
        before[1],
        before[2] + 10_000_000,
        before[3],
    ]
    with brownie.reverts(err("ExchangeOriginalNotShipped", xid)):
        exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    shipped = ship(escrow, xid, carrier).events["ItemEventRecorded"]  # the original's history names the exchange
    assert (shipped["itemId"], shipped["bizTransaction"]) == ("0x" + original.hex(), "0x" + xid.hex())
    tx = exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    sale = tx.events["SaleRecorded"]
    assert (sale["itemId"], sale["consumer"], sale["price"], sale["policyVersion"], sale["orderRef"]) == (
        "0x" + replacement.hex(),
        consumer,
        PRICE - 10_000_000,
        1,
        "0x" + xid.hex(),
    )
    item_event = tx.events["ItemEventRecorded"]
    assert (item_event["bizStep"], item_event["disposition"], item_event["bizTransaction"]) == (
        RETAIL_SELLING,
        RETAIL_SOLD,
        "0x" + xid.hex(),
    )
    assert tx.events["ExchangeReplacementReleased"]["replacementItemId"] == "0x" + replacement.hex()
    with brownie.reverts(err("ExchangeAlreadyReleased", xid)):
        exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    escrow.markReceived(xid, LOCATION, {"from": carrier})
    tx = escrow.recordInspection(xid, True, REPORT, LOCATION, {"from": inspector})
    assert tx.events["EscrowSettled"]["consumerAmount"] == 10_000_000
    assert escrow.saleOf(original)["closed"] and escrow.saleOf(replacement)["consumer"] == consumer


def test_instant_exchange_dearer_replacement(
    exchanges: Any,
    escrow: Any,
    token: Any,
    sold_item: Any,
    stocked: Any,
    merchant: Any,
    consumer: Any,
    carrier: Any,
    outsider: Any,
) -> None:
    original = sold_item(1)
    replacement = stocked(2, PRICE + 5_000_000)
    before = balances(token, merchant, escrow, exchanges)
    xid = authorize(exchanges, merchant, original, replacement, 5_000_000, True)
    assert exchanges.exchangeOf(xid)["collateral"] == PRICE
    assert balances(token, merchant, escrow, exchanges) == [before[0] - PRICE, before[1], before[2] + PRICE]
    with brownie.reverts(err("ExchangeExtraPaymentMissing", xid)):
        exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    tx = exchanges.recordExtraPayment(xid, PAYMENT, {"from": merchant})
    assert tx.events["ExchangeExtraPaymentRecorded"]["amount"] == 5_000_000
    with brownie.reverts(err("ExchangeNoExtraPayment", xid)):
        exchanges.recordExtraPayment(xid, PAYMENT, {"from": merchant})
    exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})  # before the original ships
    assert escrow.saleOf(replacement)["consumer"] == consumer
    with brownie.reverts(err("ExchangeNoCollateral", xid)):
        exchanges.releaseCollateral(xid, {"from": outsider})
    ship(escrow, xid, carrier)
    tx = exchanges.releaseCollateral(xid, {"from": outsider})  # anyone may trigger it
    settled = tx.events["ExchangeCollateralSettled"]
    assert (settled["merchant"], settled["amount"], settled["originalShipped"]) == (merchant, PRICE, True)
    assert balances(token, merchant, escrow, exchanges) == before
    with brownie.reverts(err("ExchangeNoCollateral", xid)):
        exchanges.releaseCollateral(xid, {"from": outsider})
    with brownie.reverts(err("ExchangeNoCollateral", xid)):
        exchanges.claimCollateral(xid, {"from": merchant})


def test_instant_cheaper_collateral_is_the_outstanding_value(
    exchanges: Any, escrow: Any, token: Any, sold_item: Any, stocked: Any, merchant: Any
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2, PRICE - 20_000_000), -20_000_000, True)
    assert exchanges.exchangeOf(xid)["collateral"] == PRICE - 20_000_000
    assert token.balanceOf(escrow) == 20_000_000 and token.balanceOf(exchanges) == PRICE - 20_000_000


def test_even_exchange_deposits_nothing_and_settles_zero(
    exchanges: Any,
    escrow: Any,
    token: Any,
    sold_item: Any,
    stocked: Any,
    merchant: Any,
    consumer: Any,
    carrier: Any,
    inspector: Any,
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2), 0, False)
    assert token.balanceOf(escrow) == 0
    ship(escrow, xid, carrier)
    exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    escrow.markReceived(xid, LOCATION, {"from": carrier})
    tx = escrow.recordInspection(xid, True, REPORT, LOCATION, {"from": inspector})
    assert (tx.events["EscrowSettled"]["consumerAmount"], tx.events["EscrowSettled"]["merchantAmount"]) == (0, 0)


def test_instant_original_never_shipped_collateral_claimed_after_ship_by(
    exchanges: Any, escrow: Any, token: Any, sold_item: Any, stocked: Any, merchant: Any, carrier: Any
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2), 0, True)
    exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    ship_by = int(escrow.returnOf(xid)["shipBy"])
    set_next_timestamp(ship_by)
    with brownie.reverts(err("ExchangeDeadlineNotReached", xid, ship_by)):
        exchanges.claimCollateral(xid, {"from": merchant})
    set_next_timestamp(ship_by + 1)
    before = int(token.balanceOf(merchant))
    tx = exchanges.claimCollateral(xid, {"from": merchant})
    assert tx.events["ExchangeCollateralSettled"]["originalShipped"] is False
    assert int(token.balanceOf(merchant)) == before + PRICE
    with brownie.reverts(err("EscrowDeadlinePassed", xid, ship_by)):
        ship(escrow, xid, carrier)  # the carrier's window closed at the same second


def test_original_shipped_at_the_ship_by_second_releases_collateral(
    exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any, carrier: Any
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2), 0, True)
    set_next_timestamp(int(escrow.returnOf(xid)["shipBy"]))
    ship(escrow, xid, carrier)
    with brownie.reverts(err("ExchangeNoCollateral", xid)):
        exchanges.claimCollateral(xid, {"from": merchant})
    exchanges.releaseCollateral(xid, {"from": merchant})


@pytest.mark.parametrize("end", ["cancelled", "expired"])
def test_exchange_ended_unshipped(
    exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any, consumer: Any, end: str
) -> None:
    original, replacement = sold_item(1), stocked(2)
    xid = authorize(exchanges, merchant, original, replacement, 0, True)
    if end == "cancelled":
        escrow.cancelReturn(xid, {"from": consumer})
        assert escrow.returnOf(xid)["state"] == CANCELLED
    else:
        chain.sleep(SHIP_BY_DAYS * DAY + 1)
        escrow.reclaim(xid, {"from": merchant})
        assert escrow.returnOf(xid)["state"] == EXPIRED
    with brownie.reverts(err("ExchangeEnded", xid)):
        exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    exchanges.claimCollateral(xid, {"from": merchant})
    # The ended exchange no longer reserves the replacement; the original may be exchanged again.
    second = authorize(exchanges, merchant, original, replacement, 0, False)
    assert escrow.returnOf(second)["state"] == AUTHORIZED


def test_replacement_keeps_the_original_sale_policy_version_on_a_later_return(
    exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any, carrier: Any
) -> None:
    original, replacement = sold_item(1), stocked(2)
    escrow.publishPolicy((10, 0, False, 0, 0, 3, 3, 3, ZERO32), {"from": merchant})
    xid = authorize(exchanges, merchant, original, replacement, 0, True)
    exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})
    tx = escrow.authorizeReturn(replacement, PRICE, True, {"from": merchant})  # fast refund: only policy 1 allows it
    assert tx.events["ReturnAuthorized"]["policyVersion"] == 1


# ---- refusals --------------------------------------------------------------------------------------


def test_bad_replacements(
    exchanges: Any,
    escrow: Any,
    ledger: Any,
    token: Any,
    register: Any,
    sold_item: Any,
    stocked: Any,
    merchant: Any,
    merchant2: Any,
    consumer: Any,
) -> None:
    original = sold_item(1)
    with brownie.reverts(err("ExchangeSameItem", original)):
        exchanges.authorizeExchange(original, original, 0, False, {"from": merchant})
    unknown = b"\x99" * 32
    with brownie.reverts(err("ExchangeReplacementUnknown", unknown)):
        exchanges.authorizeExchange(original, unknown, 0, False, {"from": merchant})
    destroyed = stocked(2)
    ledger.recordEvent(event_input(destroyed, DESTROYING, DESTROYED), {"from": merchant})
    with brownie.reverts(err("ExchangeReplacementDestroyed", destroyed)):
        exchanges.authorizeExchange(original, destroyed, 0, False, {"from": merchant})
    foreign = stocked(3, owner=merchant2)
    with brownie.reverts(err("ExchangeReplacementNotMerchants", foreign, merchant2)):
        exchanges.authorizeExchange(original, foreign, 0, False, {"from": merchant})
    sold = stocked(4)
    escrow.recordSale(sold, consumer, token, PRICE, ZERO32, LOCATION, {"from": merchant})
    with brownie.reverts(err("ExchangeReplacementSold", sold)):
        exchanges.authorizeExchange(original, sold, 0, False, {"from": merchant})
    shipped = stocked(5)
    ledger.recordEvent(event_input(shipped, SHIPPING, IN_PROGRESS), {"from": merchant})
    with brownie.reverts(err("ExchangeReplacementNotInStock", shipped, SHIPPING, IN_PROGRESS)):
        exchanges.authorizeExchange(original, shipped, 0, False, {"from": merchant})
    never_stocked = register(6)
    with brownie.reverts(err("ExchangeReplacementNotInStock", never_stocked, 1, 1)):
        exchanges.authorizeExchange(original, never_stocked, 0, False, {"from": merchant})
    unpriced = stocked(7, price=0)
    with brownie.reverts(err("ExchangePriceMissing", unpriced)):
        exchanges.authorizeExchange(original, unpriced, 0, False, {"from": merchant})
    dearer = stocked(8, PRICE + 1)
    with brownie.reverts(err("ExchangePriceMismatch", 1, 0)):
        exchanges.authorizeExchange(original, dearer, 0, False, {"from": merchant})
    with brownie.reverts(err("ExchangePriceMismatch", 1, -1)):
        exchanges.authorizeExchange(original, dearer, -1, False, {"from": merchant})


def test_replacement_reserved_by_an_open_exchange(exchanges: Any, sold_item: Any, stocked: Any, merchant: Any) -> None:
    replacement = stocked(3)
    xid = authorize(exchanges, merchant, sold_item(1), replacement, 0, False)
    other = sold_item(2)
    with brownie.reverts(err("ExchangeReplacementReserved", replacement, xid)):
        exchanges.authorizeExchange(other, replacement, 0, False, {"from": merchant})


def test_one_open_exchange_or_return_per_sale(
    exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any
) -> None:
    original = sold_item(1)
    xid = authorize(exchanges, merchant, original, stocked(2), 0, False)
    with brownie.reverts(err("ExchangeAlreadyOpen", original, xid)):
        exchanges.authorizeExchange(original, stocked(3), 0, False, {"from": merchant})
    with brownie.reverts(err("EscrowReturnAlreadyOpen", original, xid)):
        escrow.authorizeReturn(original, PRICE, False, {"from": merchant})
    other = sold_item(4)
    rid = bytes(escrow.authorizeReturn(other, PRICE, False, {"from": merchant}).return_value)
    with brownie.reverts(err("EscrowReturnAlreadyOpen", other, rid)):
        exchanges.authorizeExchange(other, stocked(5), 0, False, {"from": merchant})


def test_no_sale_no_terms_no_instant(
    exchanges: Any, escrow: Any, register: Any, sold_item: Any, stocked: Any, merchant: Any
) -> None:
    unsold = register(1)
    replacement = stocked(2)
    with brownie.reverts(err("ExchangeNoActiveSale", unsold)):
        exchanges.authorizeExchange(unsold, replacement, 0, False, {"from": merchant})
    escrow.publishPolicy((30, 0, False, 0, 0, 7, 14, 7, ZERO32), {"from": merchant})
    later = sold_item(3)  # bound to version 2, which has no exchange terms
    with brownie.reverts(err("ExchangeTermsMissing", merchant, 2)):
        exchanges.authorizeExchange(later, replacement, 0, False, {"from": merchant})
    exchanges.publishExchangeTerms(2, (30, False, 0, ZERO32), {"from": merchant})
    with brownie.reverts(err("ExchangeInstantNotAllowed", later)):
        exchanges.authorizeExchange(later, replacement, 0, True, {"from": merchant})
    authorize(exchanges, merchant, later, replacement, 0, False)


def test_instant_limited_by_value(exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any) -> None:
    escrow.publishPolicy((30, 0, False, 0, 0, 7, 14, 7, ZERO32), {"from": merchant})
    exchanges.publishExchangeTerms(2, (30, True, PRICE - 1, ZERO32), {"from": merchant})
    original = sold_item(1)
    with brownie.reverts(err("ExchangeInstantNotAllowed", original)):
        exchanges.authorizeExchange(original, stocked(2), 0, True, {"from": merchant})


def test_unknown_exchange(exchanges: Any, merchant: Any) -> None:
    unknown = b"\x77" * 32
    calls: tuple[Callable[[], Any], ...] = (
        lambda: exchanges.releaseReplacement(unknown, LOCATION, {"from": merchant}),
        lambda: exchanges.recordExtraPayment(unknown, PAYMENT, {"from": merchant}),
        lambda: exchanges.releaseCollateral(unknown, {"from": merchant}),
        lambda: exchanges.claimCollateral(unknown, {"from": merchant}),
    )
    for call in calls:
        with brownie.reverts(err("ExchangeUnknown", unknown)):
            call()


def test_no_extra_payment_on_a_cheaper_or_even_exchange(
    exchanges: Any, sold_item: Any, stocked: Any, merchant: Any
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2), 0, False)
    with brownie.reverts(err("ExchangeNoExtraPayment", xid)):
        exchanges.recordExtraPayment(xid, PAYMENT, {"from": merchant})


def test_replacement_that_left_stock_is_not_released(
    exchanges: Any, ledger: Any, sold_item: Any, stocked: Any, merchant: Any
) -> None:
    replacement = stocked(2)
    xid = authorize(exchanges, merchant, sold_item(1), replacement, 0, True)
    ledger.recordEvent(event_input(replacement, HOLDING, RECALLED), {"from": merchant})
    with brownie.reverts(err("ExchangeReplacementNotInStock", replacement, HOLDING, RECALLED)):
        exchanges.releaseReplacement(xid, LOCATION, {"from": merchant})


def test_returns_escrow_hooks_need_the_exchange_role(escrow: Any, sold_item: Any, merchant: Any, ledger: Any) -> None:
    role = ledger.EXCHANGE_ROLE()
    with brownie.reverts(err("EscrowMissingRole", merchant, role)):
        escrow.openExchangeReturn(sold_item(1), merchant, 0, {"from": merchant})
    with brownie.reverts(err("EscrowMissingRole", merchant, role)):
        escrow.recordExchangeSale(b"\x01" * 32, b"\x02" * 32, PRICE, LOCATION, merchant, {"from": merchant})


def test_exchange_states_seen_by_the_escrow(
    exchanges: Any, escrow: Any, sold_item: Any, stocked: Any, merchant: Any, carrier: Any
) -> None:
    xid = authorize(exchanges, merchant, sold_item(1), stocked(2), 0, False)
    assert escrow.returnOf(xid)["state"] == AUTHORIZED
    ship(escrow, xid, carrier)
    assert escrow.returnOf(xid)["state"] == IN_TRANSIT_STATE
