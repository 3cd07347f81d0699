"""A return's tracking timeline: the carrier's events merged with the return's on-chain steps.

Order: by time (the carrier's clock for its events, block time for the chain's), a carrier event before an
on-chain step of the same second (the scan comes first, the step it causes after), carrier events of the same
second in the parcel's order (in transit, out for delivery, delivered; an exception last), and otherwise in each
source's own order. Visibility is that of the return itself (:func:`ledger_service.returns.views.return_status`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_service.errors import NotFoundError
from ledger_service.logistics.interface import TrackingStatus
from ledger_service.returns.views import return_status
from ledger_service.store.carriers import ShipmentRow, TrackingEventRow, shipment_for_return, tracking_events
from ledger_service.store.handle import Store
from ledger_service.store.returns import ReturnDetail, TimelineEntry


@dataclass(frozen=True, slots=True)
class TrackingEntry:
    """One line of the timeline: a carrier event or an on-chain step."""

    at: int
    carrier: TrackingEventRow | None
    chain: TimelineEntry | None


@dataclass(frozen=True, slots=True)
class Tracking:
    detail: ReturnDetail
    shipment: ShipmentRow | None
    """None: no label was printed yet, so the return has no shipment."""
    entries: tuple[TrackingEntry, ...]


def return_tracking(
    store: Store,
    return_id: str,
    *,
    consumer: str | None = None,
    item_id: str | None = None,
    merchant: str | None = None,
) -> Tracking:
    """The return's timeline, if the caller may see the return (404 otherwise, as for the return itself)."""
    status = return_status(store, return_id, consumer=consumer, item_id=item_id, merchant=merchant)
    if status.detail is None:
        raise NotFoundError(f"no return {return_id.lower()}")
    detail = status.detail
    shipment = shipment_for_return(store, detail.ret.return_id)
    events = (
        ()
        if shipment is None
        else tracking_events(store, carrier=shipment.carrier, tracking_number=shipment.tracking_number)
    )
    keyed = [
        ((e.occurred_at, 0, _PARCEL_ORDER.get(e.status, len(_PARCEL_ORDER)), i), TrackingEntry(e.occurred_at, e, None))
        for i, e in enumerate(events)
    ]
    keyed += [((c.at, 1, 0, i), TrackingEntry(c.at, None, c)) for i, c in enumerate(detail.timeline)]
    return Tracking(detail=detail, shipment=shipment, entries=tuple(entry for _, entry in sorted(keyed, key=_key)))


_PARCEL_ORDER: dict[str, int] = {
    str(status): rank
    for rank, status in enumerate(
        (TrackingStatus.IN_TRANSIT, TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED, TrackingStatus.EXCEPTION)
    )
}
"""Carrier events of the same second in the order a parcel goes through them (the carrier's clock has seconds)."""


def _key(pair: tuple[tuple[int, int, int, int], TrackingEntry]) -> tuple[int, int, int, int]:
    return pair[0]
