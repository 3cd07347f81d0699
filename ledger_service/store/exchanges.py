"""Exchanges and the unit check: ``exchanges`` with ``exchange_payments``, ``exchange_releases`` and
``exchange_collateral_payouts`` (an exchange's state is which of those rows exist), ``exchange_terms``,
``list_prices`` and ``return_unit_mismatches``. All written by the indexer only (store/ingest.py); read here.

The functions taking a ``Connection`` run inside the caller's read transaction, so that an item's history and
the exchanges and mismatches naming it are read as of one checkpoint.

Derived facts, defined here once (the replacement's checks and the variants' list use the same conditions, which
mirror ExchangeEscrow's):

- *in stock*: the item's last event's disposition is sellable_accessible or sellable_not_accessible;
- *sold*: the item has a sale no return closed (:func:`ledger_service.store.returns.is_closing`);
- *reserved*: an exchange names it as replacement, is not released, and its return did not end unshipped
  (Cancelled or Expired);
- an item's *list price*: its latest ``ListPriceSet`` (0: not offered as a replacement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, not_, or_, select

from ledger_service.core.codes import Disposition, ReturnState
from ledger_service.store._db import read_transaction
from ledger_service.store.handle import Store
from ledger_service.store.returns import is_closing
from ledger_service.store.tables import (
    exchange_collateral_payouts,
    exchange_payments,
    exchange_releases,
    exchange_terms,
    exchanges,
    item_categories,
    items,
    list_prices,
    return_unit_mismatches,
    returns,
    sales,
)

__all__ = [
    "MAX_VARIANTS",
    "ExchangeDetail",
    "ExchangeRow",
    "ExchangeStepRow",
    "ExchangeTermsRow",
    "ReplacementRow",
    "UnitMismatchRow",
    "VariantRow",
    "exchange_detail",
    "exchange_terms_of",
    "exchange_variants",
    "exchanges_by_id",
    "exchanges_naming",
    "replacement_row",
    "return_unit_mismatched",
    "unit_mismatches_naming",
]

MAX_VARIANTS = 100
"""At most this many variants are listed for one item."""


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """An exchange as indexed: its authorization and how far it went."""

    exchange_id: str
    original_item_id: str
    replacement_item_id: str
    merchant: str
    token: str
    replacement_price: int
    price_difference: int
    """Negative: the replacement is cheaper and the difference is refunded."""
    collateral: int
    instant: bool
    extra_paid: bool
    released: bool
    collateral_settled: bool
    block_number: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class UnitMismatchRow:
    """A return whose received or inspected unit was not the unit sold."""

    return_id: str
    sold_item_id: str
    scanned_item_id: str
    scanned_merchant: str
    """The zero address when the scanned EPC is not on the ledger."""
    actor: str
    biz_step: int
    at: int
    block_number: int
    tx_hash: str


_x, _p, _r, _c = exchanges.c, exchange_payments.c, exchange_releases.c, exchange_collateral_payouts.c
_EXCHANGE = select(
    _x.exchange_id,
    _x.original_item_id,
    _x.replacement_item_id,
    _x.merchant,
    _x.token,
    _x.replacement_price,
    _x.price_difference,
    _x.collateral,
    _x.instant,
    _p.exchange_id.is_not(None).label("extra_paid"),
    _r.exchange_id.is_not(None).label("released"),
    _c.exchange_id.is_not(None).label("collateral_settled"),
    _x.block_number,
    _x.tx_hash,
).select_from(
    exchanges.outerjoin(exchange_payments, _p.exchange_id == _x.exchange_id)
    .outerjoin(exchange_releases, _r.exchange_id == _x.exchange_id)
    .outerjoin(exchange_collateral_payouts, _c.exchange_id == _x.exchange_id)
)


def _exchange(row: Any) -> ExchangeRow:
    return ExchangeRow(
        exchange_id=row.exchange_id,
        original_item_id=row.original_item_id,
        replacement_item_id=row.replacement_item_id,
        merchant=row.merchant,
        token=row.token,
        replacement_price=int(row.replacement_price),
        price_difference=int(row.price_difference),
        collateral=int(row.collateral),
        instant=bool(row.instant),
        extra_paid=bool(row.extra_paid),
        released=bool(row.released),
        collateral_settled=bool(row.collateral_settled),
        block_number=int(row.block_number),
        tx_hash=row.tx_hash,
    )


def exchanges_naming(conn: Connection, item_id: str) -> list[ExchangeRow]:
    """The exchanges whose original or replacement is ``item_id``, in chain order."""
    key = item_id.lower()
    query = _EXCHANGE.where(or_(_x.original_item_id == key, _x.replacement_item_id == key)).order_by(
        _x.block_number, _x.log_index
    )
    return [_exchange(row) for row in conn.execute(query)]


def exchanges_by_id(store: Store, exchange_ids: list[str]) -> dict[str, ExchangeRow]:
    """The indexed exchanges among ``exchange_ids``, by id (those the index does not have are left out)."""
    keys = sorted({key.lower() for key in exchange_ids})
    if not keys:
        return {}
    with read_transaction(store.engine) as conn:
        return {row.exchange_id: _exchange(row) for row in conn.execute(_EXCHANGE.where(_x.exchange_id.in_(keys)))}


def unit_mismatches_naming(conn: Connection, item_id: str) -> list[UnitMismatchRow]:
    """The unit mismatches whose sold or scanned unit is ``item_id``, in chain order."""
    m = return_unit_mismatches.c
    key = item_id.lower()
    query = (
        select(m.return_id, m.sold_item_id, m.scanned_item_id, m.scanned_merchant, m.actor, m.biz_step, m.at)
        .add_columns(m.block_number, m.tx_hash)
        .where(or_(m.sold_item_id == key, m.scanned_item_id == key))
        .order_by(m.block_number, m.log_index)
    )
    return [
        UnitMismatchRow(
            return_id=row.return_id,
            sold_item_id=row.sold_item_id,
            scanned_item_id=row.scanned_item_id,
            scanned_merchant=row.scanned_merchant,
            actor=row.actor,
            biz_step=int(row.biz_step),
            at=int(row.at),
            block_number=int(row.block_number),
            tx_hash=row.tx_hash,
        )
        for row in conn.execute(query)
    ]


def return_unit_mismatched(store: Store, return_id: str) -> bool:
    """Whether a unit received or inspected for the return was not the unit sold (as far as the index knows)."""
    m = return_unit_mismatches.c
    with read_transaction(store.engine) as conn:
        found = conn.execute(select(m.return_id).where(m.return_id == return_id.lower()).limit(1)).first()
    return found is not None


# ---- terms, list prices, stock -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeTermsRow:
    """Exchange terms published for one policy version."""

    merchant: str
    policy_version: int
    window_days: int
    instant: bool
    instant_max_value: int
    document_digest: str
    block_number: int
    tx_hash: str


def exchange_terms_of(store: Store, *, merchant: str, policy_version: int) -> ExchangeTermsRow | None:
    """The merchant's exchange terms for ``policy_version``, or None if it published none."""
    t = exchange_terms.c
    with read_transaction(store.engine) as conn:
        row = conn.execute(
            select(exchange_terms).where(t.merchant == merchant.lower(), t.policy_version == policy_version)
        ).first()
    if row is None:
        return None
    return ExchangeTermsRow(
        merchant=row.merchant,
        policy_version=int(row.policy_version),
        window_days=int(row.window_days),
        instant=bool(row.instant),
        instant_max_value=int(row.instant_max_value),
        document_digest=row.document_digest,
        block_number=int(row.block_number),
        tx_hash=row.tx_hash,
    )


_i, _lp, _s, _ret = items.c, list_prices.c, sales.c, returns.c
_IN_STOCK = _i.last_disposition.in_([int(Disposition.SELLABLE_ACCESSIBLE), int(Disposition.SELLABLE_NOT_ACCESSIBLE)])
_LIST_PRICE = (
    select(_lp.price)
    .where(_lp.item_id == _i.item_id)
    .order_by(_lp.block_number.desc(), _lp.log_index.desc())
    .limit(1)
    .scalar_subquery()
)
_SOLD = exists().where(
    _s.item_id == _i.item_id,
    not_(exists().where(_ret.item_id == _s.item_id, _ret.sale_seq == _s.sale_seq, is_closing(_ret))),
)
_ENDED_UNSHIPPED = [int(ReturnState.CANCELLED), int(ReturnState.EXPIRED)]
_RESERVED_BY = (
    select(_x.exchange_id)
    .where(
        _x.replacement_item_id == _i.item_id,
        not_(exists().where(_r.exchange_id == _x.exchange_id)),
        not_(exists().where(_ret.return_id == _x.exchange_id, _ret.state.in_(_ENDED_UNSHIPPED))),
    )
    .order_by(_x.block_number.desc())
    .limit(1)
    .scalar_subquery()
)


@dataclass(frozen=True, slots=True)
class ReplacementRow:
    """A unit as a replacement: the facts ExchangeEscrow checks, from the index."""

    item_id: str
    merchant: str
    destroyed: bool
    sold: bool
    in_stock: bool
    reserved_by: str | None
    list_price: int
    last_biz_step: int
    last_disposition: int


def _replacement_select() -> Select[Any]:
    return select(
        _i.item_id,
        _i.merchant,
        _i.destroyed,
        _SOLD.label("sold"),
        _IN_STOCK.label("in_stock"),
        _RESERVED_BY.label("reserved_by"),
        _LIST_PRICE.label("list_price"),
        _i.last_biz_step,
        _i.last_disposition,
    )


def replacement_row(store: Store, item_id: str) -> ReplacementRow | None:
    """The unit's replacement facts, or None if the index does not have it."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(_replacement_select().where(_i.item_id == item_id.lower())).first()
    if row is None:
        return None
    return ReplacementRow(
        item_id=row.item_id,
        merchant=row.merchant,
        destroyed=bool(row.destroyed),
        sold=bool(row.sold),
        in_stock=bool(row.in_stock),
        reserved_by=row.reserved_by,
        list_price=int(row.list_price or 0),
        last_biz_step=int(row.last_biz_step),
        last_disposition=int(row.last_disposition),
    )


@dataclass(frozen=True, slots=True)
class VariantRow:
    """A unit that can replace an item now: the merchant's, in stock, unsold, not reserved, priced."""

    item_id: str
    uri: str
    gtin: int
    list_price: int
    category: str | None


def exchange_variants(
    store: Store, *, merchant: str, original_item_id: str, category: str | None, manufacturer: str
) -> list[VariantRow]:
    """The units that may replace ``original_item_id`` (at most :data:`MAX_VARIANTS`, by GTIN and URI).

    The product group: the original's manufacturer (its brand's units) and, when the merchant set the original's
    category, not a unit the merchant put in another category (a unit in stock has a category once the merchant
    gives it one with its list price, or once it was sold). Within it, every unit the replacement's checks accept.
    """
    group: ColumnElement[bool] = _i.manufacturer == manufacturer.lower()
    if category is not None:
        group = and_(group, or_(item_categories.c.category.is_(None), item_categories.c.category == category))
    price = _LIST_PRICE.label("list_price")
    query = (
        select(_i.item_id, _i.uri, _i.gtin, price, item_categories.c.category)
        .select_from(items.outerjoin(item_categories, item_categories.c.item_id == _i.item_id))
        .where(
            _i.merchant == merchant.lower(),
            _i.item_id != original_item_id.lower(),
            _i.destroyed.is_(False),
            _IN_STOCK,
            group,
            not_(_SOLD),
            _RESERVED_BY.is_(None),
            and_(_LIST_PRICE.is_not(None), _LIST_PRICE != 0),
        )
        .order_by(_i.gtin, _i.uri)
        .limit(MAX_VARIANTS)
    )
    with read_transaction(store.engine) as conn:
        return [
            VariantRow(
                item_id=row.item_id,
                uri=row.uri,
                gtin=int(row.gtin),
                list_price=int(row.list_price),
                category=row.category,
            )
            for row in conn.execute(query)
        ]


# ---- one exchange's steps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeStepRow:
    """One of an exchange's own events (the return's are the return's timeline)."""

    kind: str
    """``extra_payment_recorded``, ``replacement_released`` or ``collateral_settled``."""
    block_number: int
    log_index: int
    tx_hash: str
    amount: int | None = None
    original_shipped: bool | None = None


@dataclass(frozen=True, slots=True)
class ExchangeDetail:
    """An exchange with its own steps in chain order."""

    exchange: ExchangeRow
    log_index: int
    steps: tuple[ExchangeStepRow, ...]


def exchange_detail(store: Store, exchange_id: str) -> ExchangeDetail | None:
    """The exchange and its payment, release and collateral rows, or None if the index does not have it."""
    key = exchange_id.lower()
    with read_transaction(store.engine) as conn:
        row = conn.execute(_EXCHANGE.add_columns(_x.log_index).where(_x.exchange_id == key)).first()
        if row is None:
            return None
        steps: list[ExchangeStepRow] = []
        paid = conn.execute(select(exchange_payments).where(_p.exchange_id == key)).first()
        if paid is not None:
            steps.append(
                ExchangeStepRow(
                    "extra_payment_recorded", paid.block_number, paid.log_index, paid.tx_hash, amount=int(paid.amount)
                )
            )
        released = conn.execute(select(exchange_releases).where(_r.exchange_id == key)).first()
        if released is not None:
            steps.append(
                ExchangeStepRow("replacement_released", released.block_number, released.log_index, released.tx_hash)
            )
        settled = conn.execute(select(exchange_collateral_payouts).where(_c.exchange_id == key)).first()
        if settled is not None:
            steps.append(
                ExchangeStepRow(
                    "collateral_settled",
                    settled.block_number,
                    settled.log_index,
                    settled.tx_hash,
                    amount=int(settled.amount),
                    original_shipped=bool(settled.original_shipped),
                )
            )
    steps.sort(key=lambda step: (step.block_number, step.log_index))
    return ExchangeDetail(exchange=_exchange(row), log_index=int(row.log_index), steps=tuple(steps))
