"""Read queries of the public authenticity check (``GET /v1/verify/{code}``).

Each function is one read transaction (a consistent snapshot) and returns frozen rows. Ids and
addresses are compared lowercased. What these rows say is the index's view: the caller
(:mod:`ledger_service.verification.consumer`) cross-checks it against the chain before telling anyone
that something is genuine.

- :func:`items_by_ids`: the registered items among candidate ids (an item id is keccak256 of its URI,
  so the candidates are the URIs a GS1 name may have been registered under);
- :func:`items_by_gtin`: items of one GTIN whose URI contains the serial in one of its written forms
  (a scan of the items of that GTIN; the caller checks the URI exactly);
- :func:`item_facts`: what the answer about one item shows: its row, who registered it, whether the
  index's role history says the registrant held ``role`` at that moment, its commissioning actor,
  its current sale and that sale's latest return with the payout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select

from ledger_service.store._db import read_transaction
from ledger_service.store.handle import Store
from ledger_service.store.queries import (
    ItemRow,
    PayoutRow,
    ReturnRow,
    SaleRow,
    _payout,
    _read_item,
    _read_sale,
    _return,
)
from ledger_service.store.schema import (
    escrow_payouts,
    item_events,
    item_key,
    item_registrations,
    items,
    returns,
    role_changes,
)

__all__ = ["ItemFacts", "ItemMatch", "item_facts", "items_by_gtin", "items_by_ids"]

MAX_MATCHES = 20
"""At most this many items are returned by a GTIN + serial search (more means a cloned serial anyway)."""


@dataclass(frozen=True, slots=True)
class ItemMatch:
    """A registered item a code may designate."""

    item_id: str
    uri: str
    gtin: int
    registered_at: int
    block_number: int
    log_index: int
    """Position of the registration: items are ordered by it (earliest registration first)."""


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """One item as the index shows it, with what the consumer's answer needs."""

    item: ItemRow
    manufacturer: str
    """The registrant (ItemRegistered.manufacturer)."""
    registration_block: int
    registration_tx: str
    role_at_registration: bool
    """The index's role history shows ``role`` granted to the registrant and not revoked before registration."""
    commissioning_actor: str | None
    """The actor of event seq 0 (the registration's own event), None if the index lacks it."""
    sale: SaleRow | None
    """The item's current (latest) sale."""
    last_return: ReturnRow | None
    """The latest return of that sale."""
    payout: PayoutRow | None
    """That return's payout, if its deposit was paid out."""


def _match(row: Any) -> ItemMatch:
    return ItemMatch(
        item_id=row.item_id,
        uri=row.uri,
        gtin=int(row.gtin),
        registered_at=int(row.registered_at),
        block_number=int(row.block_number),
        log_index=int(row.log_index),
    )


def _matches() -> Select[Any]:
    reg = item_registrations.c
    return (
        select(items.c.item_id, items.c.uri, items.c.gtin, items.c.registered_at, reg.block_number, reg.log_index)
        .select_from(items.join(item_registrations, reg.item_id == items.c.item_id))
        .order_by(reg.block_number, reg.log_index)
    )


def items_by_ids(store: Store, item_ids: Sequence[str]) -> tuple[ItemMatch, ...]:
    """The registered items among ``item_ids``, earliest registration first."""
    keys = sorted({item_id.lower() for item_id in item_ids})
    if not keys:
        return ()
    stmt = _matches().where(items.c.item_id.in_(keys))
    with read_transaction(store.engine) as conn:
        return tuple(_match(row) for row in conn.execute(stmt))


def items_by_gtin(store: Store, *, gtin: int, serial_forms: Sequence[str]) -> tuple[ItemMatch, ...]:
    """Items registered with ``gtin`` whose URI ends in ``.<serial>`` (EPC URI) or has ``/21/<serial>`` or
    ``/ser/<serial>`` (Digital Link) for one of ``serial_forms``; earliest first, at most :data:`MAX_MATCHES`.
    """
    uri = items.c.uri
    conditions = []
    for form in serial_forms:
        conditions.append(uri.endswith(f".{form}", autoescape=True))
        for ai in ("21", "ser"):
            conditions.append(uri.endswith(f"/{ai}/{form}", autoescape=True))
            for after in ("/", "?", "#"):
                conditions.append(uri.contains(f"/{ai}/{form}{after}", autoescape=True))
    if not conditions:
        return ()
    stmt = _matches().where(items.c.gtin == gtin, or_(*conditions)).limit(MAX_MATCHES)
    with read_transaction(store.engine) as conn:
        return tuple(_match(row) for row in conn.execute(stmt))


def item_facts(store: Store, *, item_id: str, role: str) -> ItemFacts | None:
    """The item's facts (see :class:`ItemFacts`), or None if the index does not have the item."""
    key, role_key = item_id.lower(), role.lower()
    reg, rc, ev, r = item_registrations.c, role_changes.c, item_events.c, returns.c
    with read_transaction(store.engine) as conn:
        found = _read_item(conn, key)
        registration = conn.execute(
            select(reg.manufacturer, reg.block_number, reg.log_index, reg.tx_hash).where(reg.item_id == key)
        ).first()
        if found is None or registration is None:
            return None
        block, log_index = registration.block_number, registration.log_index
        granted = conn.execute(
            select(rc.granted)
            .where(
                rc.role == role_key,
                rc.account == registration.manufacturer,
                or_(rc.block_number < block, and_(rc.block_number == block, rc.log_index < log_index)),
            )
            .order_by(rc.block_number.desc(), rc.log_index.desc())
            .limit(1)
        ).scalar_one_or_none()
        actor = conn.execute(
            select(ev.actor)
            .where(ev.item_key == item_key(key), ev.item_id == key, ev.seq == 0)
            .order_by(ev.block_number, ev.log_index)
            .limit(1)
        ).scalar_one_or_none()
        sale = _read_sale(conn, key)
        last_return: ReturnRow | None = None
        payout: PayoutRow | None = None
        if sale is not None:
            row = conn.execute(
                select(returns)
                .where(r.item_id == key, r.sale_seq == sale.sale_seq)
                .order_by(r.block_number.desc(), r.authorized_at.desc(), r.return_id)
                .limit(1)
            ).first()
            if row is not None:
                last_return = _return(row)
                paid = conn.execute(
                    select(escrow_payouts).where(escrow_payouts.c.return_id == last_return.return_id)
                ).first()
                payout = None if paid is None else _payout(paid)
    return ItemFacts(
        item=found[0],
        manufacturer=registration.manufacturer,
        registration_block=int(registration.block_number),
        registration_tx=registration.tx_hash,
        role_at_registration=bool(granted),
        commissioning_actor=actor,
        sale=sale,
        last_return=last_return,
        payout=payout,
    )
