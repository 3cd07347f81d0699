"""A return's shipment: created with its first label, once, with the carrier returns ship with.

Why at the first label and not at approval: with a real carrier a shipment is a label bought, and a return the
consumer cancels before printing anything should cost nothing; the label is also the first moment the
tracking number is needed. Creating it is idempotent: concurrent first labels of one return get one shipment
(:func:`ledger_service.store.carriers.insert_shipment`).
"""

from __future__ import annotations

import time

import structlog

from ledger_service.errors import ConflictError, NotFoundError
from ledger_service.logistics.interface import CarrierAdapter, ShipmentRequest
from ledger_service.logistics.local import LocalCarrier
from ledger_service.returns.label_sheet import (
    Format,
    Lang,
    RenderedLabel,
    Size,
    check_labelable,
    return_address,
    return_label,
)
from ledger_service.returns.labels import label_code
from ledger_service.settings import CarrierSettings, Settings
from ledger_service.store.carriers import ShipmentRow, insert_shipment, shipment_for_return
from ledger_service.store.handle import Store
from ledger_service.store.returns import ReturnRow

log = structlog.get_logger(__name__)

NEW_NUMBER_ATTEMPTS = 5
"""Tracking numbers tried when a fresh one is already another return's (random S10 serials: rare)."""


def carrier_settings(settings: Settings, name: str) -> CarrierSettings:
    """The configured carrier ``name`` (:class:`NotFoundError` naming the configured ones otherwise)."""
    found = settings.carriers.get(name)
    if found is None:
        known = ", ".join(sorted(settings.carriers)) or "none"
        raise NotFoundError(f"no carrier {name!r} is configured here (LEDGER_CARRIERS has: {known})")
    return found


def adapter(name: str, config: CarrierSettings) -> CarrierAdapter:
    """The adapter of a configured carrier."""
    return LocalCarrier(name=name, webhook_secret=config.webhook_secret.get_secret_value())


def returns_carrier(settings: Settings) -> str | None:
    """The carrier returns ship with: the first of LEDGER_CARRIERS (None: no carrier configured)."""
    return next(iter(settings.carriers), None)


def ensure_shipment(*, store: Store, settings: Settings, ret: ReturnRow, return_address: str) -> ShipmentRow | None:
    """The return's shipment, created now if it has none (None when no carrier is configured)."""
    existing = shipment_for_return(store, ret.return_id)
    if existing is not None:
        return existing
    name = returns_carrier(settings)
    if name is None:
        return None
    carrier = adapter(name, settings.carriers[name])
    request = ShipmentRequest(
        return_id=ret.return_id,
        label_code=label_code(ret.return_id),
        merchant=ret.merchant,
        return_address=return_address,
    )
    for _ in range(NEW_NUMBER_ATTEMPTS):
        shipment = carrier.create_shipment(request)
        row = insert_shipment(
            store,
            ShipmentRow(
                carrier=name,
                tracking_number=shipment.tracking_number,
                return_id=ret.return_id,
                created_at=int(time.time()),
            ),
        )
        if row is not None:
            if row.tracking_number == shipment.tracking_number:
                log.info("shipment created", carrier=name, tracking_number=row.tracking_number, return_id=ret.return_id)
            return row
    raise ConflictError(f"carrier {name} gave tracking numbers already in use {NEW_NUMBER_ATTEMPTS} times; try again")


def tracked_label(
    *, store: Store, settings: Settings, ret: ReturnRow, size: Size, format: Format, lang: Lang
) -> RenderedLabel:
    """The return's label with its carrier's tracking number as the Code 128, the shipment created with the
    first label (the QR code alone creates none: it carries no tracking number)."""
    check_labelable(ret)
    tracking = None
    if format != "qr":
        shipment = ensure_shipment(
            store=store, settings=settings, ret=ret, return_address=return_address(store, ret.merchant)
        )
        tracking = None if shipment is None else shipment.tracking_number
    return return_label(
        store, ret, public_url=settings.public_base_url, size=size, format=format, lang=lang, tracking=tracking
    )
