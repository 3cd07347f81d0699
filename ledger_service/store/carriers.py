"""Carriers' records (``carrier_shipments``, ``carrier_events``, ``carrier_deliveries``; written by the API only).

Each function is one transaction. Guarantees callers rely on:

- a return has at most one shipment: of concurrent :func:`insert_shipment` calls for one return, all get the
  same row (the first one written); a tracking number already taken by another return gets None;
- a carrier's event is recorded once, by its event id, however often and in whatever order it is delivered
  (:func:`record_events`), and the notification it calls for (an exception's) is written to the outbox in the
  same transaction: once per event, never for a duplicate;
- of concurrent :func:`claim_delivery` calls for one delivery id, exactly one gets ``CLAIMED``; a delivery
  whose process died (claimed longer than the lease ago, never completed) may be claimed again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, and_, delete, select, update

from ledger_service.core.notifications import carrier_event_subject
from ledger_service.store._db import insert_ignore, key_in, read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.notifications import add_return_notice
from ledger_service.store.tables import carrier_deliveries, carrier_events, carrier_shipments

__all__ = [
    "CarrierNotice",
    "DeliveryClaim",
    "ShipmentRow",
    "TrackingEventRow",
    "claim_delivery",
    "complete_delivery",
    "insert_shipment",
    "record_events",
    "release_delivery",
    "shipment_for_return",
    "shipments_by_tracking",
    "tracking_events",
]


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """A return's shipment with a carrier."""

    carrier: str
    tracking_number: str
    return_id: str
    created_at: int


@dataclass(frozen=True, slots=True)
class TrackingEventRow:
    """One tracking event as the carrier reported it."""

    carrier: str
    event_id: str
    tracking_number: str
    status: str
    occurred_at: int
    location: str | None
    read_point: str | None
    delivery_id: str
    received_at: int
    epc: str | None = None
    """A delivered event: the EPC URI the carrier scanned on the unit in the parcel."""


@dataclass(frozen=True, slots=True)
class CarrierNotice:
    """The notification a tracking event calls for (the outbox row's type and data; its return's sale and
    parties are read from the index)."""

    type: str
    return_id: str
    data: dict[str, Any]


def _shipment(row: Row[Any]) -> ShipmentRow:
    return ShipmentRow(
        carrier=row.carrier, tracking_number=row.tracking_number, return_id=row.return_id, created_at=row.created_at
    )


def _event(row: Row[Any]) -> TrackingEventRow:
    return TrackingEventRow(
        carrier=row.carrier,
        event_id=row.event_id,
        tracking_number=row.tracking_number,
        status=row.status,
        occurred_at=row.occurred_at,
        location=row.location,
        read_point=row.read_point,
        delivery_id=row.delivery_id,
        received_at=row.received_at,
        epc=row.epc,
    )


# ---- shipments ----------------------------------------------------------------------------------------------


def insert_shipment(store: Store, shipment: ShipmentRow) -> ShipmentRow | None:
    """Writes ``shipment`` unless its return has one; the return's shipment afterwards (this one or the one
    written first). None: the tracking number belongs to another return (the caller issues another)."""
    t = carrier_shipments
    with write_transaction(store.engine) as conn:
        insert_ignore(
            conn,
            t,
            {
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "return_id": shipment.return_id.lower(),
                "created_at": shipment.created_at,
            },
        )
        row = conn.execute(select(t).where(t.c.return_id == shipment.return_id.lower())).first()
    return None if row is None else _shipment(row)


def shipment_for_return(store: Store, return_id: str) -> ShipmentRow | None:
    """The return's shipment, if a label created one."""
    t = carrier_shipments
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(t).where(t.c.return_id == return_id.lower())).first()
    return None if row is None else _shipment(row)


def shipments_by_tracking(store: Store, *, carrier: str, tracking_numbers: Sequence[str]) -> dict[str, ShipmentRow]:
    """The carrier's shipments among ``tracking_numbers``, by tracking number (unknown ones are absent)."""
    if not tracking_numbers:
        return {}
    t = carrier_shipments
    with read_transaction(store.engine) as conn:
        rows = conn.execute(
            select(t).where(t.c.carrier == carrier, key_in(conn, t.c.tracking_number, sorted(set(tracking_numbers))))
        ).all()
    return {row.tracking_number: _shipment(row) for row in rows}


# ---- tracking events ----------------------------------------------------------------------------------------


def record_events(
    store: Store, events: Sequence[TrackingEventRow], *, notices: Mapping[str, CarrierNotice] | None = None
) -> set[str]:
    """Records the events not recorded before (by carrier and event id), each new one with its notification in
    ``notices`` (by event id) in the same transaction; the ids of those that were new."""
    added: set[str] = set()
    with write_transaction(store.engine) as conn:
        for event in events:
            if insert_ignore(
                conn,
                carrier_events,
                {
                    "carrier": event.carrier,
                    "event_id": event.event_id,
                    "tracking_number": event.tracking_number,
                    "status": event.status,
                    "occurred_at": event.occurred_at,
                    "location": event.location,
                    "read_point": event.read_point,
                    "epc": event.epc,
                    "delivery_id": event.delivery_id,
                    "received_at": event.received_at,
                },
            ):
                added.add(event.event_id)
                notice = (notices or {}).get(event.event_id)
                if notice is not None:
                    add_return_notice(
                        conn,
                        kind=notice.type,
                        subject=carrier_event_subject(event.carrier, event.event_id),
                        return_id=notice.return_id,
                        data=notice.data,
                        occurred_at=event.occurred_at,
                        now=event.received_at,
                    )
    return added


def tracking_events(store: Store, *, carrier: str, tracking_number: str) -> tuple[TrackingEventRow, ...]:
    """A shipment's events in the carrier's time order (then by event id: a stable order for equal times)."""
    t = carrier_events
    with read_transaction(store.engine) as conn:
        rows = conn.execute(
            select(t)
            .where(t.c.carrier == carrier, t.c.tracking_number == tracking_number)
            .order_by(t.c.occurred_at, t.c.event_id)
        ).all()
    return tuple(_event(row) for row in rows)


# ---- webhook deliveries -------------------------------------------------------------------------------------


class DeliveryClaim(StrEnum):
    CLAIMED = "claimed"
    """This caller processes the delivery."""
    DONE = "done"
    """It was processed before: a replay."""
    BUSY = "busy"
    """Another process is processing it now."""


def _delivery_where(carrier: str, delivery_id: str) -> Any:
    t = carrier_deliveries
    return and_(t.c.carrier == carrier, t.c.delivery_id == delivery_id)


def claim_delivery(
    store: Store, *, carrier: str, delivery_id: str, now: int, lease_s: int, keep_s: int
) -> DeliveryClaim:
    """Claims a webhook delivery for processing (see the module docstring). Deliveries claimed more than
    ``keep_s`` seconds ago are forgotten first (their timestamps are too old to pass verification anyway)."""
    t = carrier_deliveries
    where = _delivery_where(carrier, delivery_id)
    with write_transaction(store.engine) as conn:
        conn.execute(delete(t).where(t.c.claimed_at < now - keep_s))
        if insert_ignore(conn, t, {"carrier": carrier, "delivery_id": delivery_id, "claimed_at": now}):
            return DeliveryClaim.CLAIMED
        row = conn.execute(select(t.c.claimed_at, t.c.completed_at).where(where)).first()
        if row is None:  # deleted between the two statements (PostgreSQL): take it
            insert_ignore(conn, t, {"carrier": carrier, "delivery_id": delivery_id, "claimed_at": now})
            return DeliveryClaim.CLAIMED
        if row.completed_at is not None:
            return DeliveryClaim.DONE
        if row.claimed_at > now - lease_s:
            return DeliveryClaim.BUSY
        taken = conn.execute(
            update(t)
            .where(where, t.c.claimed_at == row.claimed_at, t.c.completed_at.is_(None))
            .values(claimed_at=now)
            .execution_options(preserve_rowcount=True)
        )
        return DeliveryClaim.CLAIMED if taken.rowcount == 1 else DeliveryClaim.BUSY


def complete_delivery(store: Store, *, carrier: str, delivery_id: str, now: int) -> None:
    """Marks a claimed delivery processed: the same id is a replay from now on."""
    with write_transaction(store.engine) as conn:
        conn.execute(update(carrier_deliveries).where(_delivery_where(carrier, delivery_id)).values(completed_at=now))


def release_delivery(store: Store, *, carrier: str, delivery_id: str) -> None:
    """Forgets a claimed delivery that could not be processed, so that the carrier's retry is accepted."""
    with write_transaction(store.engine) as conn:
        conn.execute(
            delete(carrier_deliveries).where(
                _delivery_where(carrier, delivery_id), carrier_deliveries.c.completed_at.is_(None)
            )
        )
