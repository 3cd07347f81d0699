"""Carriers' records (revision 0012), on SQLite and PostgreSQL: one shipment per return under concurrency, an
event recorded once, and a webhook delivery claimed by exactly one of its concurrent deliveries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_service.store import Store
from ledger_service.store.carriers import (
    DeliveryClaim,
    ShipmentRow,
    TrackingEventRow,
    claim_delivery,
    complete_delivery,
    insert_shipment,
    record_events,
    release_delivery,
    shipment_for_return,
    shipments_by_tracking,
    tracking_events,
)
from tests.support.threads import together

RETURN = "0x" + "ab" * 32
OTHER = "0x" + "cd" * 32
NOW = 1_800_000_000


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def _shipment(number: str, return_id: str = RETURN) -> ShipmentRow:
    return ShipmentRow(carrier="local", tracking_number=number, return_id=return_id, created_at=NOW)


def _event(event_id: str, status: str, at: int, number: str = "LR1") -> TrackingEventRow:
    return TrackingEventRow(
        carrier="local",
        event_id=event_id,
        tracking_number=number,
        status=status,
        occurred_at=at,
        location=None,
        read_point=None,
        delivery_id="msg_1",
        received_at=NOW,
    )


def test_concurrent_first_labels_give_one_shipment(store: Store) -> None:
    rows = together(8, lambda i: insert_shipment(store, _shipment(f"LR{i}")))
    assert all(isinstance(row, ShipmentRow) for row in rows), rows
    assert len({row.tracking_number for row in rows if isinstance(row, ShipmentRow)}) == 1
    assert shipment_for_return(store, RETURN.upper().replace("0X", "0x")) == rows[0]


def test_a_tracking_number_of_another_return_is_refused(store: Store) -> None:
    assert insert_shipment(store, _shipment("LR1")) is not None
    assert insert_shipment(store, _shipment("LR1", return_id=OTHER)) is None
    assert shipment_for_return(store, OTHER) is None
    assert set(shipments_by_tracking(store, carrier="local", tracking_numbers=["LR1", "LR9"])) == {"LR1"}
    assert shipments_by_tracking(store, carrier="other", tracking_numbers=["LR1"]) == {}


def test_an_event_is_recorded_once_and_read_in_the_carriers_time_order(store: Store) -> None:
    assert record_events(store, [_event("e2", "delivered", NOW + 10), _event("e1", "in_transit", NOW)]) == {"e1", "e2"}
    assert record_events(store, [_event("e1", "in_transit", NOW), _event("e3", "exception", NOW + 5)]) == {"e3"}
    results = together(6, lambda _: record_events(store, [_event("e4", "in_transit", NOW + 1)]))
    assert sorted(len(r) for r in results if isinstance(r, set)) == [0, 0, 0, 0, 0, 1]
    assert [e.event_id for e in tracking_events(store, carrier="local", tracking_number="LR1")] == [
        "e1",
        "e4",
        "e3",
        "e2",
    ]


def test_a_delivery_is_claimed_once_replays_are_done_and_a_dead_claim_is_taken_over(store: Store) -> None:
    claims = together(
        8, lambda _: claim_delivery(store, carrier="local", delivery_id="d1", now=NOW, lease_s=60, keep_s=86_400)
    )
    assert sorted(str(c) for c in claims) == ["busy"] * 7 + ["claimed"]
    # its process died: after the lease another may take it, once
    later = together(
        4, lambda _: claim_delivery(store, carrier="local", delivery_id="d1", now=NOW + 61, lease_s=60, keep_s=86_400)
    )
    assert sorted(str(c) for c in later) == ["busy"] * 3 + ["claimed"]
    complete_delivery(store, carrier="local", delivery_id="d1", now=NOW + 62)
    again = claim_delivery(store, carrier="local", delivery_id="d1", now=NOW + 63, lease_s=60, keep_s=86_400)
    assert again is DeliveryClaim.DONE
    # another carrier's id space is its own
    assert (
        claim_delivery(store, carrier="x", delivery_id="d1", now=NOW, lease_s=60, keep_s=86_400)
        is DeliveryClaim.CLAIMED
    )


def test_a_released_delivery_is_accepted_again_and_old_ones_are_forgotten(store: Store) -> None:
    assert (
        claim_delivery(store, carrier="local", delivery_id="d2", now=NOW, lease_s=60, keep_s=600)
        is DeliveryClaim.CLAIMED
    )
    release_delivery(store, carrier="local", delivery_id="d2")
    assert (
        claim_delivery(store, carrier="local", delivery_id="d2", now=NOW, lease_s=60, keep_s=600)
        is DeliveryClaim.CLAIMED
    )
    complete_delivery(store, carrier="local", delivery_id="d2", now=NOW)
    release_delivery(store, carrier="local", delivery_id="d2")  # a completed one stays
    assert (
        claim_delivery(store, carrier="local", delivery_id="d2", now=NOW + 1, lease_s=60, keep_s=600)
        is DeliveryClaim.DONE
    )
    # past keep_s its timestamp could not pass verification any more: the id is forgotten
    assert (
        claim_delivery(store, carrier="local", delivery_id="d2", now=NOW + 601, lease_s=60, keep_s=600)
        is DeliveryClaim.CLAIMED
    )
