"""ReturnsEscrow.markInTransitByProof: a return's first carrier scan proved from an anchored scan batch.

Trees are built here the way contracts/interfaces/IBatchAnchor.sol states the format (test_batch_anchor's
helpers), without the service's code.
"""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from brownie import BatchAnchor, chain
from conftest import (
    ARRIVING,
    AUTHORIZED,
    CANCELLED,
    DAY,
    DEFAULT_POLICY,
    DEPARTING,
    IN_PROGRESS,
    IN_TRANSIT,
    IN_TRANSIT_STATE,
    LOCATION,
    PRICE,
    RECEIVED,
    RECEIVING,
    TRANSPORTING,
    ZERO32,
    err,
    latest_timestamp,
    set_next_timestamp,
)
from test_batch_anchor import four_leaf_tree, leaf

DIGEST = b"\xd1" * 32
READ_POINT = b"0614141.00999.0".ljust(32, b"\x00")
FEE_BPS = DEFAULT_POLICY[1]
SHIP_BY_DAYS = DEFAULT_POLICY[5]
INSPECT_BY_DAYS = DEFAULT_POLICY[6]


def transit_scan(
    itemid: bytes,
    return_id: bytes,
    submitter: Any,
    *,
    time: int,
    step: int = DEPARTING,
    disposition: int = IN_TRANSIT,
    document: bytes = ZERO32,
) -> tuple[Any, ...]:
    """A ScanLeaf: the carrier picked the returned parcel up (`return_id` as business transaction)."""
    return (itemid, 0, ZERO32, step, disposition, READ_POINT, document, return_id, time, str(submitter))


def other_scans(submitter: Any, time: int) -> list[tuple[Any, ...]]:
    """Three scans of other items sharing the batch."""
    return [
        (bytes([n]) * 32, 0, ZERO32, TRANSPORTING, IN_TRANSIT, LOCATION, ZERO32, ZERO32, time, str(submitter))
        for n in (1, 2, 3)
    ]


def anchored(batches: Any, values: tuple[Any, ...], *, by: Any = None, wait: bool = True) -> tuple[bytes, list[bytes]]:
    """Anchors a batch of `values` and three other scans (by `by`, default the scan's submitter): (root, proof).

    With `wait`, a scan dated ahead of the chain is anchored at its time, as a batcher would anchor it.
    """
    if wait and values[8] > latest_timestamp():
        set_next_timestamp(values[8])
    scans = [values, *other_scans(values[9], values[8])]
    root, proofs = four_leaf_tree([leaf(s) for s in scans])
    batches.anchorBatch(root, len(scans), DIGEST, {"from": by or values[9]})
    return root, proofs[0]


@pytest.fixture
def fast_return(authorized: Any) -> tuple[bytes, bytes, int]:
    """(itemId, returnId, authorization time) of a fast-refund return."""
    itemid, return_id = authorized(1, fast=True)
    return itemid, return_id, latest_timestamp()


def test_a_proved_batched_scan_pays_the_fast_refund(
    escrow: Any,
    ledger: Any,
    batches: Any,
    token: Any,
    fast_return: Any,
    carrier: Any,
    consumer: Any,
    merchant: Any,
    outsider: Any,
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at + 3600, document=b"\x44" * 32)
    root, proof = anchored(batches, values)
    before = token.balanceOf(consumer), token.balanceOf(merchant)
    # Anyone may relay the proof: the scan's submitter is the actor, the proof speaks for it.
    tx = escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": outsider})
    now = chain[tx.block_number].timestamp
    refund = PRICE - PRICE * FEE_BPS // 10_000
    assert (token.balanceOf(consumer) - before[0], token.balanceOf(merchant) - before[1]) == (refund, PRICE - refund)
    changed = tx.events["ReturnStateChanged"]
    assert (changed["state"], changed["actor"], changed["previous"]) == (IN_TRANSIT_STATE, carrier.address, AUTHORIZED)
    assert changed["deadline"] == now + INSPECT_BY_DAYS * DAY
    assert bytes(changed["evidence"]) == root
    scanned = tx.events["ItemEventRecorded"]
    assert (scanned["actor"], scanned["bizStep"], scanned["disposition"]) == (carrier.address, DEPARTING, IN_TRANSIT)
    assert (bytes(scanned["location"]), bytes(scanned["document"])) == (READ_POINT, b"\x44" * 32)
    assert bytes(scanned["bizTransaction"]) == return_id
    assert tx.events["EscrowSettled"]["consumerAmount"] == refund
    record = escrow.returnOf(return_id)
    assert (record["state"], record["settled"], record["inspectBy"]) == (
        IN_TRANSIT_STATE,
        True,
        now + INSPECT_BY_DAYS * DAY,
    )
    assert [int(x) for x in ledger.lastStepOf(itemid)] == [DEPARTING, IN_TRANSIT]


def test_without_fast_refund_the_proof_starts_the_inspection_period_and_pays_nothing(
    escrow: Any, batches: Any, token: Any, authorized: Any, carrier: Any, consumer: Any
) -> None:
    itemid, return_id = authorized(2, fast=False)
    values = transit_scan(itemid, return_id, carrier, time=latest_timestamp(), step=TRANSPORTING)
    root, proof = anchored(batches, values)
    before = token.balanceOf(escrow)
    tx = escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})
    assert "EscrowSettled" not in tx.events
    assert token.balanceOf(escrow) == before
    assert escrow.returnOf(return_id)["state"] == IN_TRANSIT_STATE


def test_the_lifecycle_goes_on_after_a_proved_scan_without_a_second_payout(
    escrow: Any, batches: Any, token: Any, fast_return: Any, carrier: Any, inspector: Any, consumer: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at)
    root, proof = anchored(batches, values)
    escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})
    paid = token.balanceOf(consumer)
    escrow.markReceived(return_id, LOCATION, {"from": carrier})
    assert escrow.returnOf(return_id)["state"] == RECEIVED
    tx = escrow.recordInspection(return_id, True, b"\x77" * 32, LOCATION, {"from": inspector})
    assert "EscrowSettled" not in tx.events and token.balanceOf(consumer) == paid


def test_a_replayed_proof_pays_nothing(escrow: Any, batches: Any, token: Any, fast_return: Any, carrier: Any) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at + 60)
    root, proof = anchored(batches, values)
    escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})
    balance = token.balanceOf(escrow)
    with brownie.reverts(err("EscrowInvalidState", return_id, IN_TRANSIT_STATE)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})
    # A second scan of the same parcel, in another batch, does not pay either.
    again = transit_scan(itemid, return_id, carrier, time=authorized_at + 120, step=ARRIVING)
    root2, proof2 = anchored(batches, again)
    with brownie.reverts(err("EscrowInvalidState", return_id, IN_TRANSIT_STATE)):
        escrow.markInTransitByProof(return_id, batches, again, root2, proof2, {"from": carrier})
    # Nor does the on-chain scan after the proved one.
    with brownie.reverts(err("EscrowInvalidState", return_id, IN_TRANSIT_STATE)):
        escrow.markInTransit(return_id, LOCATION, {"from": carrier})
    assert token.balanceOf(escrow) == balance


def test_a_scan_of_the_returns_item_naming_another_return_cannot_be_reused(
    escrow: Any, batches: Any, fast_return: Any, carrier: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    other = b"\x0e" * 32
    values = transit_scan(itemid, other, carrier, time=authorized_at)
    root, proof = anchored(batches, values)
    with brownie.reverts(err("EscrowScanWrongReturn", return_id, other)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})


def test_a_forged_or_misplaced_proof_is_refused(escrow: Any, batches: Any, fast_return: Any, carrier: Any) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at + 60)
    root, proof = anchored(batches, values)
    # Altered after anchoring (another read point): the proof no longer leads to the root.
    forged = (*values[:5], b"elsewhere".ljust(32, b"\x00"), *values[6:])
    with brownie.reverts(err("EscrowScanNotInBatch", root)):
        escrow.markInTransitByProof(return_id, batches, forged, root, proof, {"from": carrier})
    # Another leaf's proof, a truncated proof, a made-up sibling.
    for bad in ([proof[1], proof[0]], proof[:1], [b"\x66" * 32, proof[1]]):
        with brownie.reverts(err("EscrowScanNotInBatch", root)):
            escrow.markInTransitByProof(return_id, batches, values, root, bad, {"from": carrier})
    # A scan that is its own one-leaf "root", never anchored.
    with brownie.reverts(err("EscrowBatchNotAnchored", carrier, leaf(values))):
        escrow.markInTransitByProof(return_id, batches, values, leaf(values), [], {"from": carrier})
    assert escrow.returnOf(return_id)["state"] == AUTHORIZED


def test_a_root_anchored_by_someone_else_does_not_vouch_for_the_carrier(
    escrow: Any, batches: Any, fast_return: Any, carrier: Any, manufacturer: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at)
    root, proof = anchored(batches, values, by=manufacturer)
    with brownie.reverts(err("EscrowBatchNotAnchored", carrier, root)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})


@pytest.mark.parametrize("scanner", ["manufacturer", "merchant"])
def test_a_batch_not_anchored_by_a_carrier_is_refused(
    escrow: Any, batches: Any, fast_return: Any, request: Any, scanner: str
) -> None:
    itemid, return_id, authorized_at = fast_return
    submitter = request.getfixturevalue(scanner)
    values = transit_scan(itemid, return_id, submitter, time=authorized_at)
    root, proof = anchored(batches, values)
    with brownie.reverts(err("EscrowBatchNotCarrier", submitter)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": submitter})


def test_a_carrier_whose_role_was_revoked_after_anchoring_triggers_nothing(
    escrow: Any, ledger: Any, batches: Any, fast_return: Any, carrier: Any, admin: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at)
    root, proof = anchored(batches, values)
    ledger.revokeRole(ledger.CARRIER_ROLE(), carrier, {"from": admin})
    with brownie.reverts(err("EscrowBatchNotCarrier", carrier)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": admin})


def test_a_batch_anchor_without_the_role_proves_nothing(
    escrow: Any, ledger: Any, fast_return: Any, carrier: Any, admin: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    rogue = BatchAnchor.deploy(ledger, {"from": admin})
    values = transit_scan(itemid, return_id, carrier, time=authorized_at)
    root, proof = anchored(rogue, values)
    with brownie.reverts(err("EscrowUnknownBatchAnchor", rogue)):
        escrow.markInTransitByProof(return_id, rogue, values, root, proof, {"from": carrier})


def test_a_scan_of_another_item_is_refused(
    escrow: Any, batches: Any, fast_return: Any, authorized: Any, carrier: Any
) -> None:
    _, return_id, authorized_at = fast_return
    other_item, _ = authorized(3, fast=True)
    values = transit_scan(other_item, return_id, carrier, time=authorized_at)
    root, proof = anchored(batches, values)
    with brownie.reverts(err("EscrowScanWrongItem", return_id, other_item)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})


@pytest.mark.parametrize(
    ("step", "disposition"), [(RECEIVING, IN_TRANSIT), (TRANSPORTING, IN_PROGRESS), (99, IN_TRANSIT)]
)
def test_a_scan_that_is_not_an_in_transit_carrier_step_is_refused(
    escrow: Any, batches: Any, fast_return: Any, carrier: Any, step: int, disposition: int
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at, step=step, disposition=disposition)
    root, proof = anchored(batches, values)
    with brownie.reverts(err("EscrowScanWrongStep", step, disposition)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})


def test_a_scan_dated_before_the_authorization_or_after_its_anchor_is_refused(
    escrow: Any, batches: Any, fast_return: Any, carrier: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    early = transit_scan(itemid, return_id, carrier, time=authorized_at - 1)
    root, proof = anchored(batches, early)
    anchored_at = latest_timestamp()
    with brownie.reverts(err("EscrowScanOutOfWindow", return_id, authorized_at - 1, authorized_at, anchored_at)):
        escrow.markInTransitByProof(return_id, batches, early, root, proof, {"from": carrier})
    ahead = authorized_at + 10 * DAY
    late = transit_scan(itemid, return_id, carrier, time=ahead)
    root, proof = anchored(batches, late, wait=False)
    anchored_at = latest_timestamp()
    with brownie.reverts(err("EscrowScanOutOfWindow", return_id, ahead, authorized_at, anchored_at)):
        escrow.markInTransitByProof(return_id, batches, late, root, proof, {"from": carrier})


def test_the_anchor_must_be_mined_by_ship_by_but_the_proof_may_come_later(
    escrow: Any, batches: Any, fast_return: Any, carrier: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    ship_by = escrow.returnOf(return_id)["shipBy"]
    assert ship_by == authorized_at + SHIP_BY_DAYS * DAY
    on_time = transit_scan(itemid, return_id, carrier, time=ship_by)
    set_next_timestamp(ship_by)
    root, proof = anchored(batches, on_time)
    late = transit_scan(itemid, return_id, carrier, time=ship_by, step=TRANSPORTING)
    set_next_timestamp(ship_by + 1)
    late_root, late_proof = anchored(batches, late)
    with brownie.reverts(err("EscrowDeadlinePassed", return_id, ship_by)):
        escrow.markInTransitByProof(return_id, batches, late, late_root, late_proof, {"from": carrier})
    chain.sleep(DAY)
    escrow.markInTransitByProof(return_id, batches, on_time, root, proof, {"from": carrier})
    assert escrow.returnOf(return_id)["state"] == IN_TRANSIT_STATE


def test_a_return_not_awaiting_its_first_scan_is_refused(
    escrow: Any, batches: Any, fast_return: Any, consumer: Any, carrier: Any
) -> None:
    itemid, return_id, authorized_at = fast_return
    values = transit_scan(itemid, return_id, carrier, time=authorized_at)
    root, proof = anchored(batches, values)
    escrow.cancelReturn(return_id, {"from": consumer})
    with brownie.reverts(err("EscrowInvalidState", return_id, CANCELLED)):
        escrow.markInTransitByProof(return_id, batches, values, root, proof, {"from": carrier})
    unknown = b"\x0f" * 32
    with brownie.reverts(err("EscrowUnknownReturn", unknown)):
        escrow.markInTransitByProof(unknown, batches, values, root, proof, {"from": carrier})
