"""Items: the ``items`` state table, their ``item_registrations`` and ``item_events``, the role history of
their actors (``role_changes``), and the API's ``item_categories``.

Reads run in one read transaction each (a consistent snapshot on both databases) and return frozen
dataclasses, never rows. Ids are compared lowercase (callers may pass any case).

- :func:`item`: an item as the index folds it, with the derived fact *recalled*: the item has an event
  with disposition ``recalled`` and no later event (higher seq) with a disposition that puts it back in
  circulation (``sellable_accessible``, ``sellable_not_accessible``, ``conformant``);
- :func:`item_audit_rows`: one item's full indexed history for auditors, exactly as stored: nothing is
  derived or repaired (a row with a gap in seq, a wrong hash or a stale block hash is returned as is),
  because the caller (:mod:`ledger_service.verification`) checks it against the chain;
- :func:`items_by_ids`, :func:`items_by_gtin`: the registered items a scanned code may designate (an item
  id is keccak256 of its URI, so the candidates are the URIs a GS1 name may have been registered under;
  a GTIN + serial search scans the items of that GTIN, the caller checks the URI exactly);
- :func:`set_item_category`: the merchant's category of an item (the API's record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, or_, select

from ledger_service.core.codes import Disposition
from ledger_service.store._db import read_transaction, upsert, write_transaction
from ledger_service.store._folds import chunks
from ledger_service.store.exchanges import ExchangeRow, UnitMismatchRow, exchanges_naming, unit_mismatches_naming
from ledger_service.store.handle import Store
from ledger_service.store.tables import (
    checkpoint,
    item_categories,
    item_events,
    item_key,
    item_registrations,
    items,
    returns,
    role_changes,
    sales,
)

__all__ = [
    "AuditEventRow",
    "AuditItemRows",
    "AuditRegistrationRow",
    "ItemMatch",
    "ItemRow",
    "RoleChangeRow",
    "item",
    "item_audit_rows",
    "items_by_gtin",
    "items_by_ids",
    "set_item_category",
]

MAX_MATCHES = 20
"""At most this many items are returned by a GTIN + serial search (more means a cloned serial anyway)."""

_RECIRCULATING = (
    int(Disposition.SELLABLE_ACCESSIBLE),
    int(Disposition.SELLABLE_NOT_ACCESSIBLE),
    int(Disposition.CONFORMANT),
)


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item as the index knows it."""

    item_id: str
    uri: str
    gtin: int
    manufacturer: str
    merchant: str
    registered_at: int
    event_count: int
    head_hash: str
    last_biz_step: int
    last_disposition: int
    last_event_at: int
    delivered_at: int | None
    destroyed: bool
    chain_ok: bool
    recalled: bool

    @classmethod
    def from_row(cls, row: Any, recalled: bool) -> ItemRow:
        """From an ``items`` row (anything with its column names as attributes) and its recall state."""
        return cls(
            item_id=row.item_id,
            uri=row.uri,
            gtin=row.gtin,
            manufacturer=row.manufacturer,
            merchant=row.merchant,
            registered_at=row.registered_at,
            event_count=row.event_count,
            head_hash=row.head_hash,
            last_biz_step=row.last_biz_step,
            last_disposition=row.last_disposition,
            last_event_at=row.last_event_at,
            delivered_at=row.delivered_at,
            destroyed=bool(row.destroyed),
            chain_ok=bool(row.chain_ok),
            recalled=recalled,
        )


# ---- the item row (statements built once: the eligibility read joins them) ------------------
#
# Every statement takes bound parameters (``item_id``, and ``item_key``: :func:`item_key` of it), so
# SQLAlchemy compiles it once per dialect and each call only binds values.

_ev = item_events.c
LAST_RECALL_SEQ = (
    select(func.max(_ev.seq))
    .where(
        _ev.item_key == bindparam("item_key"),
        _ev.item_id == items.c.item_id,
        _ev.disposition == int(Disposition.RECALLED),
    )
    .scalar_subquery()
)
"""The seq of the item's last ``recalled`` event."""
LAST_BACK_SEQ = (
    select(func.max(_ev.seq))
    .where(_ev.item_key == bindparam("item_key"), _ev.item_id == items.c.item_id, _ev.disposition.in_(_RECIRCULATING))
    .scalar_subquery()
)
"""The seq of the item's last event that put it back in circulation."""
_ITEM = (
    select(items, LAST_RECALL_SEQ.label("last_recall"), LAST_BACK_SEQ.label("last_back"), item_categories.c.category)
    .select_from(items.outerjoin(item_categories, item_categories.c.item_id == items.c.item_id))
    .where(items.c.item_id == bindparam("item_id"))
)


def is_recalled(last_recall: int | None, last_back: int | None) -> bool:
    """Whether an item is recalled, given :data:`LAST_RECALL_SEQ` and :data:`LAST_BACK_SEQ`."""
    return last_recall is not None and (last_back is None or last_back < last_recall)


def read_item(conn: Connection, item_id: str) -> tuple[ItemRow, str | None] | None:
    """The item (``item_id`` lowercase) and its category (the API's record), or None; inside the caller's
    transaction."""
    row = conn.execute(_ITEM, {"item_id": item_id, "item_key": item_key(item_id)}).first()
    if row is None:
        return None
    return ItemRow.from_row(row, is_recalled(row.last_recall, row.last_back)), row.category


def item(store: Store, item_id: str) -> ItemRow | None:
    """The item, or None if it is not registered (as far as the index knows)."""
    with read_transaction(store.engine) as conn:
        found = read_item(conn, item_id.lower())
    return None if found is None else found[0]


def set_item_category(store: Store, *, item_id: str, category: str, set_by: str, set_at: int) -> None:
    """Sets (or replaces) the item's category."""
    row = {"item_id": item_id.lower(), "category": category, "set_by": set_by.lower(), "set_at": set_at}
    with write_transaction(store.engine) as conn:
        upsert(conn, item_categories, [row])


# ---- auditors: the item's rows as stored -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditRegistrationRow:
    """The item's ``ItemRegistered`` log row."""

    uri: str
    gtin: int
    manufacturer: str
    merchant: str
    """The merchant of record at registration."""
    metadata_digest: str
    block_number: int
    log_index: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class AuditEventRow:
    """One ``item_events`` row, every column."""

    seq: int
    biz_step: int
    disposition: int
    actor: str
    location: str
    document: str
    biz_transaction: str
    timestamp: int
    prev_hash: str
    event_hash: str
    chain_ok: bool
    block_number: int
    block_hash: str | None
    log_index: int
    tx_hash: str
    tx_index: int


@dataclass(frozen=True, slots=True)
class RoleChangeRow:
    """A ``RoleGranted`` / ``RoleRevoked`` of one of the item's actors."""

    role: str
    account: str
    granted: bool
    block_number: int
    log_index: int


@dataclass(frozen=True, slots=True)
class AuditItemRows:
    """What the index holds about one item (any part may be missing: that is for the auditor to judge)."""

    item_id: str
    registration: AuditRegistrationRow | None
    current_merchant: str | None
    """The items state row's merchant of record (None without a state row)."""
    destroyed: bool
    events: tuple[AuditEventRow, ...]
    """In seq order (ties, which a tampered index may have, by chain position)."""
    role_changes: tuple[RoleChangeRow, ...]
    """Role changes of the events' actors, in chain order."""
    indexed_block: int | None
    """The index checkpoint."""
    biz_transaction_types: dict[str, str]
    """The item's business transactions the index can name: its returns' ids -> ``rma``, its sales' order
    references -> ``po`` (CBV 2.0 business transaction types); a return in whose parcel the item turned up
    instead of the unit sold is ``rma`` too."""
    exchanges: tuple[ExchangeRow, ...] = ()
    """The exchanges naming the item as original or replacement, in chain order."""
    unit_mismatches: tuple[UnitMismatchRow, ...] = ()
    """The returns whose received unit was not the one sold, naming the item as either, in chain order."""


def item_audit_rows(store: Store, item_id: str) -> AuditItemRows | None:
    """The item's rows, or None when the index has neither a registration, a state row nor an event of it."""
    key = item_id.lower()
    ev, reg, it, rc = item_events.c, item_registrations.c, items.c, role_changes.c
    with read_transaction(store.engine) as conn:
        registration_row = conn.execute(
            select(
                reg.uri,
                reg.gtin,
                reg.manufacturer,
                reg.merchant,
                reg.metadata_digest,
                reg.block_number,
                reg.log_index,
                reg.tx_hash,
            ).where(reg.item_id == key)
        ).first()
        state_row = conn.execute(select(it.merchant, it.destroyed).where(it.item_id == key)).first()
        event_rows = conn.execute(
            select(
                ev.seq,
                ev.biz_step,
                ev.disposition,
                ev.actor,
                ev.location,
                ev.document,
                ev.biz_transaction,
                ev.timestamp,
                ev.prev_hash,
                ev.event_hash,
                ev.chain_ok,
                ev.block_number,
                ev.block_hash,
                ev.log_index,
                ev.tx_hash,
                ev.tx_index,
            )
            .where(ev.item_key == item_key(key), ev.item_id == key)
            .order_by(ev.seq, ev.block_number, ev.log_index)
        ).all()
        if registration_row is None and state_row is None and not event_rows:
            return None
        actors = sorted({row.actor for row in event_rows})
        changes: list[RoleChangeRow] = []
        for part in chunks(conn, actors):
            changes.extend(
                RoleChangeRow(
                    role=row.role,
                    account=row.account,
                    granted=bool(row.granted),
                    block_number=row.block_number,
                    log_index=row.log_index,
                )
                for row in conn.execute(
                    select(rc.role, rc.account, rc.granted, rc.block_number, rc.log_index).where(rc.account.in_(part))
                )
            )
        types = {row.order_ref: "po" for row in conn.execute(select(sales.c.order_ref).where(sales.c.item_id == key))}
        types.update(
            {row.return_id: "rma" for row in conn.execute(select(returns.c.return_id).where(returns.c.item_id == key))}
        )
        swapped = tuple(exchanges_naming(conn, key)), tuple(unit_mismatches_naming(conn, key))
        types.update({row.return_id: "rma" for row in swapped[1] if row.scanned_item_id == key})
        indexed = conn.execute(select(checkpoint.c.block_number).where(checkpoint.c.id == 1)).scalar_one_or_none()
    registration = (
        None
        if registration_row is None
        else AuditRegistrationRow(
            uri=registration_row.uri,
            gtin=int(registration_row.gtin),
            manufacturer=registration_row.manufacturer,
            merchant=registration_row.merchant,
            metadata_digest=registration_row.metadata_digest,
            block_number=int(registration_row.block_number),
            log_index=int(registration_row.log_index),
            tx_hash=registration_row.tx_hash,
        )
    )
    return AuditItemRows(
        item_id=key,
        registration=registration,
        current_merchant=None if state_row is None else state_row.merchant,
        destroyed=bool(state_row.destroyed) if state_row is not None else False,
        events=tuple(_audit_event(row) for row in event_rows),
        role_changes=tuple(sorted(changes, key=lambda c: (c.block_number, c.log_index))),
        indexed_block=None if indexed is None else int(indexed),
        biz_transaction_types=types,
        exchanges=swapped[0],
        unit_mismatches=swapped[1],
    )


def _audit_event(row: Any) -> AuditEventRow:
    return AuditEventRow(
        seq=int(row.seq),
        biz_step=int(row.biz_step),
        disposition=int(row.disposition),
        actor=row.actor,
        location=row.location,
        document=row.document,
        biz_transaction=row.biz_transaction,
        timestamp=int(row.timestamp),
        prev_hash=row.prev_hash,
        event_hash=row.event_hash,
        chain_ok=bool(row.chain_ok),
        block_number=int(row.block_number),
        block_hash=row.block_hash,
        log_index=int(row.log_index),
        tx_hash=row.tx_hash,
        tx_index=int(row.tx_index),
    )


# ---- the items a scanned code may designate ----------------------------------------------------


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
