"""Carriers' records (revision 0012), on SQLite and PostgreSQL: one shipment per return under concurrency, an
event recorded once (and its exception's notification with it), and a webhook delivery claimed by exactly one of
its concurrent deliveries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.notifications import RETURN_CARRIER_EXCEPTION, carrier_event_subject, notification_id
from ledger_service.store import Store
from ledger_service.store.carriers import (
    CarrierNotice,
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
from ledger_service.store.notifications import outbox
from tests.ledger_service.store.builders import ChainBuilder, addr
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


def test_an_event_s_notice_is_written_with_its_first_record_only(store: Store) -> None:
    """A carrier's exception notifies once: its outbox row is written in the transaction that records the event,
    so a duplicate of the event (the same id, in this delivery or a later one) adds none, and a second exception
    of the parcel is a notification of its own."""
    chain = ChainBuilder()
    chain.policy(addr(2), 1)
    item = chain.register("urn:epc:id:sgtin:0614141.107346.9")
    sale = chain.sale(item)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    rid = chain.authorize(item, sale)
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    before = len(outbox(store))

    def notice(reason: str) -> CarrierNotice:
        return CarrierNotice(type=RETURN_CARRIER_EXCEPTION, return_id=rid, data={"reason": reason})

    lost = _event("evt_lost", "exception", NOW)
    assert record_events(store, [lost, lost], notices={"evt_lost": notice("lost")}) == {"evt_lost"}
    assert record_events(store, [lost], notices={"evt_lost": notice("lost")}) == set()
    together(4, lambda _: record_events(store, [lost], notices={"evt_lost": notice("lost")}))
    held = _event("evt_held", "exception", NOW + 60)
    record_events(store, [held], notices={"evt_held": notice("held")})
    added = outbox(store)[before:]
    assert [(n.type, n.data["reason"], n.return_id) for n in added] == [
        (RETURN_CARRIER_EXCEPTION, "lost", rid),
        (RETURN_CARRIER_EXCEPTION, "held", rid),
    ]
    assert added[0].id == notification_id(RETURN_CARRIER_EXCEPTION, carrier_event_subject("local", "evt_lost"))
    assert (added[0].item_id, added[0].sale_seq, added[0].merchant) == (item, 1, addr(2))
    assert added[0].data["state"] == "authorized" and added[0].block_number is None
