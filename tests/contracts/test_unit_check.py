"""Unit-level check at receiving and inspection: the scanned EPC's item id must be the unit sold.

A mismatch (another serial, another merchant's item, an EPC not on the ledger) is recorded with
ReturnUnitMismatch, the return goes to the arbiter (Disputed) and nothing is paid by the normal
paths; the scanned unit's history shows where it turned up. The matching unit behaves exactly as
the entry points without a scanned EPC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import chain
from conftest import (
    ACCEPTED,
    ARRIVING,
    DAY,
    DESTROYED,
    DESTROYING,
    DISPUTED,
    INSPECTING,
    LOCATION,
    NON_CONFORMANT,
    PRICE,
    RECEIVED,
    RECEIVING,
    RESOLVED,
    RETURNED,
    ZERO32,
    err,
    event_input,
    item_id,
    set_next_timestamp,
)

REPORT = b"\x44" * 32
NOT_ON_LEDGER = item_id("urn:epc:id:sgtin:9999999.000000.1")


def ship(escrow: Any, rid: bytes, carrier: Any) -> None:
    escrow.markInTransit(rid, LOCATION, {"from": carrier})


def hexed(value: bytes) -> str:
    return "0x" + value.hex()


def test_matching_unit_received_and_inspected(
    escrow: Any, token: Any, authorized: Any, carrier: Any, inspector: Any, consumer: Any
) -> None:
    itemid, rid = authorized(1)
    ship(escrow, rid, carrier)
    tx = escrow.markReceivedUnit(rid, LOCATION, itemid, {"from": carrier})
    assert "ReturnUnitMismatch" not in tx.events
    assert escrow.returnOf(rid)["state"] == RECEIVED
    tx = escrow.recordInspectionUnit(rid, True, REPORT, LOCATION, itemid, {"from": inspector})
    assert escrow.returnOf(rid)["state"] == ACCEPTED
    assert tx.events["EscrowSettled"]["consumerAmount"] == PRICE - PRICE // 10


@pytest.mark.parametrize("scanned_kind", ["other_serial", "other_merchant", "not_on_ledger", "destroyed"])
def test_mismatch_at_receiving_goes_to_the_arbiter(
    escrow: Any,
    ledger: Any,
    token: Any,
    register: Any,
    authorized: Any,
    merchant: Any,
    merchant2: Any,
    carrier: Any,
    inspector: Any,
    arbiter: Any,
    consumer: Any,
    scanned_kind: str,
) -> None:
    itemid, rid = authorized(1)
    scans: dict[str, Callable[[], tuple[bytes, Any]]] = {
        "other_serial": lambda: (register(2), merchant),
        "other_merchant": lambda: (register(3, merchant2), merchant2),
        "not_on_ledger": lambda: (NOT_ON_LEDGER, "0x" + "00" * 20),
        "destroyed": lambda: (register(4), merchant),
    }
    scanned, scanned_merchant = scans[scanned_kind]()
    if scanned_kind == "destroyed":
        ledger.recordEvent(event_input(scanned, DESTROYING, DESTROYED), {"from": merchant})
    ship(escrow, rid, carrier)
    held = int(token.balanceOf(escrow))
    tx = escrow.markReceivedUnit(rid, LOCATION, scanned, {"from": carrier})
    mismatch = tx.events["ReturnUnitMismatch"]
    assert (mismatch["returnId"], mismatch["soldItemId"], mismatch["scannedItemId"]) == (
        hexed(rid),
        hexed(itemid),
        hexed(scanned),
    )
    assert (mismatch["scannedMerchant"], mismatch["actor"], mismatch["bizStep"]) == (
        scanned_merchant,
        carrier,
        ARRIVING,
    )
    changed = tx.events["ReturnStateChanged"]
    assert (changed["state"], changed["evidence"]) == (DISPUTED, hexed(scanned))
    item_events = list(tx.events["ItemEventRecorded"]) if "ItemEventRecorded" in tx.events else []
    if scanned_kind in ("other_serial", "other_merchant"):
        assert len(item_events) == 1
        assert (item_events[0]["itemId"], item_events[0]["bizStep"], item_events[0]["disposition"]) == (
            hexed(scanned),
            ARRIVING,
            RETURNED,
        )
        assert item_events[0]["bizTransaction"] == hexed(rid)
    else:
        assert len(item_events) == 0  # nothing on the ledger to record it on
    assert "EscrowSettled" not in tx.events and int(token.balanceOf(escrow)) == held
    # No normal path pays: no inspection, no consumer claim after inspectBy, no merchant reclaim.
    with brownie.reverts(err("EscrowInvalidState", rid, DISPUTED)):
        escrow.recordInspection(rid, True, REPORT, LOCATION, {"from": inspector})
    chain.sleep(40 * DAY)
    with brownie.reverts(err("EscrowInvalidState", rid, DISPUTED)):
        escrow.claimUninspected(rid, {"from": consumer})
    with brownie.reverts(err("EscrowInvalidState", rid, DISPUTED)):
        escrow.reclaim(rid, {"from": merchant})
    tx = escrow.resolveDispute(rid, 0, REPORT, {"from": arbiter})
    assert tx.events["EscrowSettled"]["merchantAmount"] == PRICE
    assert escrow.returnOf(rid)["state"] == RESOLVED


def test_merchant_receiving_another_merchants_unit_records_only_the_mismatch(
    escrow: Any, register: Any, authorized: Any, merchant: Any, merchant2: Any, carrier: Any
) -> None:
    _, rid = authorized(1)
    foreign = register(2, merchant2)
    ship(escrow, rid, carrier)
    tx = escrow.markReceivedUnit(rid, LOCATION, foreign, {"from": merchant})
    assert tx.events["ReturnUnitMismatch"]["bizStep"] == RECEIVING
    assert "ItemEventRecorded" not in tx.events  # the merchant may not write another merchant's history


def test_own_other_unit_received_by_the_merchant_is_in_its_history(
    escrow: Any, register: Any, authorized: Any, merchant: Any, carrier: Any
) -> None:
    _, rid = authorized(1)
    other = register(2)
    ship(escrow, rid, carrier)
    tx = escrow.markReceivedUnit(rid, LOCATION, other, {"from": merchant})
    assert tx.events["ItemEventRecorded"]["bizStep"] == RECEIVING


def test_mismatch_at_inspection(
    escrow: Any,
    token: Any,
    register: Any,
    authorized: Any,
    carrier: Any,
    inspector: Any,
    arbiter: Any,
    consumer: Any,
) -> None:
    _, rid = authorized(1)
    other = register(2)
    ship(escrow, rid, carrier)
    escrow.markReceived(rid, LOCATION, {"from": carrier})
    held = int(token.balanceOf(escrow))
    tx = escrow.recordInspectionUnit(rid, True, REPORT, LOCATION, other, {"from": inspector})
    assert tx.events["ReturnUnitMismatch"]["bizStep"] == INSPECTING
    assert escrow.returnOf(rid)["state"] == DISPUTED
    event = tx.events["ItemEventRecorded"]
    assert (event["itemId"], event["disposition"], event["document"]) == (hexed(other), NON_CONFORMANT, hexed(REPORT))
    assert int(token.balanceOf(escrow)) == held
    tx = escrow.resolveDispute(rid, PRICE, REPORT, {"from": arbiter})
    assert tx.events["EscrowSettled"]["consumerAmount"] == PRICE


def test_inspection_mismatch_deadline_at_the_boundary_second(
    escrow: Any, register: Any, authorized: Any, carrier: Any, inspector: Any
) -> None:
    _, rid = authorized(1)
    _, late = authorized(2)
    other = register(3)
    for r in (rid, late):
        ship(escrow, r, carrier)
        escrow.markReceived(r, LOCATION, {"from": carrier})
    inspect_by = int(escrow.returnOf(late)["inspectBy"])
    set_next_timestamp(int(escrow.returnOf(rid)["inspectBy"]))
    escrow.recordInspectionUnit(rid, False, REPORT, LOCATION, other, {"from": inspector})
    set_next_timestamp(inspect_by + 1)
    with brownie.reverts(err("EscrowDeadlinePassed", late, inspect_by)):
        escrow.recordInspectionUnit(late, False, REPORT, LOCATION, other, {"from": inspector})


def test_fast_refunded_mismatch_is_ruled_without_a_second_payout(
    escrow: Any, register: Any, authorized: Any, carrier: Any, arbiter: Any
) -> None:
    _, rid = authorized(1, fast=True)
    ship(escrow, rid, carrier)  # the consumer is paid here
    escrow.markReceivedUnit(rid, LOCATION, register(2), {"from": carrier})
    with brownie.reverts(err("EscrowAlreadySettled", rid)):
        escrow.resolveDispute(rid, 1, REPORT, {"from": arbiter})
    tx = escrow.resolveDispute(rid, 0, REPORT, {"from": arbiter})
    assert "EscrowSettled" not in tx.events
    assert escrow.returnOf(rid)["state"] == RESOLVED


def test_scan_without_an_epc_is_refused(escrow: Any, authorized: Any, carrier: Any, inspector: Any) -> None:
    _, rid = authorized(1)
    ship(escrow, rid, carrier)
    with brownie.reverts(err("EscrowUnitNotScanned", rid)):
        escrow.markReceivedUnit(rid, LOCATION, ZERO32, {"from": carrier})
    escrow.markReceived(rid, LOCATION, {"from": carrier})
    with brownie.reverts(err("EscrowUnitNotScanned", rid)):
        escrow.recordInspectionUnit(rid, True, REPORT, LOCATION, ZERO32, {"from": inspector})


def test_exchange_with_a_swapped_unit_pays_no_difference(
    exchanges: Any,
    escrow: Any,
    token: Any,
    terms: Any,
    sold_item: Any,
    stocked: Any,
    register: Any,
    merchant: Any,
    carrier: Any,
    arbiter: Any,
) -> None:
    original = sold_item(1)
    xid = bytes(
        exchanges.authorizeExchange(original, stocked(2, PRICE - 10), -10, True, {"from": merchant}).return_value
    )
    ship(escrow, xid, carrier)
    exchanges.releaseCollateral(xid, {"from": carrier})
    tx = escrow.markReceivedUnit(xid, LOCATION, register(3), {"from": carrier})
    assert "ReturnUnitMismatch" in tx.events and "EscrowSettled" not in tx.events
    assert int(token.balanceOf(escrow)) == 10
    tx = escrow.resolveDispute(xid, 0, REPORT, {"from": arbiter})
    assert tx.events["EscrowSettled"]["merchantAmount"] == 10
