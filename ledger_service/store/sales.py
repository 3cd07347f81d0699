"""Sales: the ``sales`` log table, an item's current sale, and the reads that start from an item and its
current sale and join what hangs off it (its policy version, its returns, the payout).

- :func:`current_sale`: the item's latest sale, with the derived fact *closed*: the item came back by a
  return of this sale (Accepted, Resolved, Reclaimed, ConsumerClaimed, or Rejected after a payout:
  :func:`ledger_service.store.returns.is_closing`), which ends the sale: no return of it can be
  authorized any more.
- :func:`eligibility_read` (GET /v1/items/{id}/eligibility, a hot path): in ONE ``SELECT`` of outer
  joins, the checkpoint, the item with its recall state and category, its latest sale with its return
  count and closed flag, the sale's policy version and the item's open return; then, in the same snapshot
  and only when the policy's fast refund depends on it, the requesting consumer's returns in the last 90
  days. The requester is decided by the caller from the item and sale just read (e.g. the sale's consumer,
  for a merchant asking), so the route reads nothing twice. On PostgreSQL the one ``SELECT`` runs in
  autocommit (a statement sees one snapshot by itself: no BEGIN and COMMIT round trips); only when the second
  is needed are both read again in one REPEATABLE READ transaction. The facts are those of
  :mod:`~ledger_service.store.items` and :mod:`~ledger_service.store.returns` (their conditions are
  reused); the tests compare it with a reference that reads one table at a time.
- :func:`item_facts` (the public authenticity check, GET /v1/verify/{code}): the item, who registered it,
  whether the index's role history says the registrant held ``role`` then, its commissioning actor, its
  current sale and that sale's latest return with the payout. That is the index's view: the caller
  (:mod:`ledger_service.verification.consumer`) cross-checks it against the chain before telling anyone
  that something is genuine.

Each read is one read transaction (a consistent snapshot). Ids and addresses are compared lowercased.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Select, and_, bindparam, exists, func, literal, or_, select

from ledger_service.core.codes import ReturnState
from ledger_service.store._db import _with_driver_errors, read_transaction, single_statement
from ledger_service.store._errors import StoreUnavailableError
from ledger_service.store.checkpoint import IndexHead
from ledger_service.store.handle import Store
from ledger_service.store.items import LAST_BACK_SEQ, LAST_RECALL_SEQ, ItemRow, is_recalled, read_item
from ledger_service.store.policies import PolicyRow
from ledger_service.store.returns import DAY, RECENT_DAYS, RECENT_RETURNS, PayoutRow, ReturnRow, is_closing, is_open
from ledger_service.store.tables import (
    blocks,
    checkpoint,
    escrow_payouts,
    item_categories,
    item_events,
    item_key,
    item_registrations,
    items,
    policies,
    returns,
    role_changes,
    sales,
)

__all__ = [
    "EligibilitySnapshot",
    "ItemFacts",
    "MerchantCounts",
    "RequesterOf",
    "SalePage",
    "SaleRow",
    "current_sale",
    "eligibility_read",
    "item_facts",
    "list_sales",
    "merchant_counts",
    "needs_recent_returns",
]


@dataclass(frozen=True, slots=True)
class SaleRow:
    """One sale of an item, with what its returns did to it."""

    item_id: str
    sale_seq: int
    merchant: str
    consumer: str
    token: str
    price: int
    policy_version: int
    order_ref: str
    sold_at: int
    block_number: int
    tx_hash: str
    returns: int
    """Returns authorized for this sale so far."""
    closed: bool
    """The item came back by a return: the sale ended."""


_r, _s = returns.c, sales.c
SALE_RETURNS = (
    select(func.count())
    .select_from(returns)
    .where(_r.item_id == _s.item_id, _r.sale_seq == _s.sale_seq)
    .scalar_subquery()
)
"""Returns authorized for the sale (correlated with ``sales``)."""
SALE_CLOSED = exists().where(_r.item_id == _s.item_id, _r.sale_seq == _s.sale_seq, is_closing(_r)).label("closed")
"""Whether a return ended the sale (correlated with ``sales``)."""
_SALE = (
    select(sales, SALE_RETURNS.label("return_count"), SALE_CLOSED)
    .where(_s.item_id == bindparam("item_id"))
    .order_by(_s.sale_seq.desc())
    .limit(1)
)


def read_sale(conn: Connection, item_id: str) -> SaleRow | None:
    """The item's latest sale (``item_id`` lowercase), inside the caller's transaction."""
    row = conn.execute(_SALE, {"item_id": item_id}).first()
    return None if row is None else _sale(row)


def _sale(row: Any) -> SaleRow:
    """A row of ``sales`` with ``return_count`` and ``closed`` (:data:`SALE_RETURNS`, :data:`SALE_CLOSED`)."""
    return SaleRow(
        item_id=row.item_id,
        sale_seq=row.sale_seq,
        merchant=row.merchant,
        consumer=row.consumer,
        token=row.token,
        price=int(row.price),
        policy_version=row.policy_version,
        order_ref=row.order_ref,
        sold_at=row.sold_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
        returns=int(row.return_count),
        closed=bool(row.closed),
    )


def current_sale(store: Store, item_id: str) -> SaleRow | None:
    """The item's latest sale (closed or not), or None if it was never sold."""
    with read_transaction(store.engine) as conn:
        return read_sale(conn, item_id.lower())


# ---- the eligibility read ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EligibilitySnapshot:
    """Everything the eligibility rules read from the index about one request, from one snapshot."""

    head: IndexHead | None
    now: int
    """The time the rules run at: the later of the caller's clock and the indexed head's timestamp."""
    item: ItemRow | None
    sale: SaleRow | None
    """The item's current (latest) sale, closed or not."""
    policy: PolicyRow | None
    """The policy version the sale is bound to."""
    open_return: ReturnRow | None
    consumer_returns_90d: int
    """Returns of the requesting consumer authorized in the 90 days up to ``now``."""
    category: str | None = None
    """The item's category, as its merchant set it (the API's record)."""


RequesterOf = Callable[[ItemRow | None, SaleRow | None], str]
"""Who asks, given the item and its latest sale as read (may raise, e.g. a 404 for a merchant's stranger
item: the read then ends without further statements)."""

_base = select(literal(1).label("one")).subquery("base")
_latest = sales.alias("latest_sale")
_open = returns.alias("open_return")
_candidate = returns.alias("open_candidate")
_LATEST_SEQ = select(func.max(_latest.c.sale_seq)).where(_latest.c.item_id == items.c.item_id).scalar_subquery()
_OPEN_ID = (
    select(_candidate.c.return_id)
    .where(_candidate.c.item_id == items.c.item_id, is_open(_candidate.c))
    .order_by(_candidate.c.block_number.desc(), _candidate.c.return_id)
    .limit(1)
    .scalar_subquery()
)
_ROW = select(
    checkpoint.c.block_number.label("h_block_number"),
    checkpoint.c.block_hash.label("h_block_hash"),
    blocks.c.timestamp.label("h_timestamp"),
    *(column.label(f"i_{column.name}") for column in items.c),
    LAST_RECALL_SEQ.label("last_recall"),
    LAST_BACK_SEQ.label("last_back"),
    item_categories.c.category.label("category"),
    *(column.label(f"s_{column.name}") for column in sales.c),
    SALE_RETURNS.label("s_return_count"),
    SALE_CLOSED.label("s_closed"),
    *(column.label(f"p_{column.name}") for column in policies.c),
    *(column.label(f"r_{column.name}") for column in _open.c),
).select_from(
    _base.outerjoin(checkpoint, checkpoint.c.id == 1)
    .outerjoin(blocks, blocks.c.number == checkpoint.c.block_number)
    .outerjoin(items, items.c.item_id == bindparam("item_id"))
    .outerjoin(item_categories, item_categories.c.item_id == items.c.item_id)
    .outerjoin(sales, and_(sales.c.item_id == items.c.item_id, sales.c.sale_seq == _LATEST_SEQ))
    .outerjoin(policies, and_(policies.c.merchant == sales.c.merchant, policies.c.version == sales.c.policy_version))
    .outerjoin(_open, _open.c.return_id == _OPEN_ID)
)


_COLUMNS = tuple(column.name for column in _ROW.selected_columns)


def _positions(prefix: str) -> dict[str, int]:
    return {name[len(prefix) :]: i for i, name in enumerate(_COLUMNS) if name.startswith(prefix)}


_ITEM_AT, _SALE_AT, _POLICY_AT, _RETURN_AT = _positions("i_"), _positions("s_"), _positions("p_"), _positions("r_")
_AT = {name: i for i, name in enumerate(_COLUMNS)}


class _View:
    """Attribute access to one prefix's columns of a result tuple (what the rows' ``from_row`` read)."""

    __slots__ = ("_at", "_row")

    def __init__(self, row: Sequence[Any], at: dict[str, int]) -> None:
        self._row, self._at = row, at

    def __getattr__(self, name: str) -> Any:
        return self._row[self._at[name]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled once for a dialect: its SQL and how to order its parameters."""

    sql: str
    positions: tuple[str, ...] | None
    """Parameter names in placeholder order (positional paramstyles); None for named ones."""
    constants: dict[str, Any]

    def args(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.constants, **values}
        return merged if self.positions is None else tuple(merged[name] for name in self.positions)


_compiled: dict[tuple[str, str], _Compiled] = {}


def _compile(name: str, statement: Select[Any], dialect: Dialect, placeholders: dict[str, Any]) -> _Compiled:
    """The statement as the driver's SQL (IN lists expanded), cached per dialect."""
    key = (name, dialect.name)
    found = _compiled.get(key)
    if found is None:
        state = statement.compile(dialect=dialect).construct_expanded_state(placeholders)
        positions = tuple(state.positiontup) if state.positiontup is not None else None
        found = _Compiled(sql=state.statement, positions=positions, constants=dict(state.parameters))
        _compiled[key] = found
    return found


def needs_recent_returns(policy: PolicyRow | None) -> bool:
    """Whether the rules read the consumer's recent returns under ``policy`` (only its fast refund's
    ``fast_refund_max_returns_90d`` does; the on-chain parameters are authoritative for it)."""
    return policy is not None and policy.fast_refund and policy.fast_refund_max_returns_90d != 0


def eligibility_read(store: Store, *, item_id: str, now: int, requester: RequesterOf) -> EligibilitySnapshot:
    """The eligibility facts of ``item_id`` in one snapshot (see the module docstring).

    ``now`` is the caller's clock; the rules run at the later of it and the indexed head's timestamp.
    ``consumer_returns_90d`` is 0 when the policy does not need it (:func:`needs_recent_returns`).

    The statements are compiled once and run on the driver's cursor: SQLAlchemy's per-execution work
    costs ten times SQLite's own for these indexed lookups.
    """
    with _driver_errors():
        if store.engine.dialect.name != "sqlite":
            with _snapshot(store, single=True) as cursor:
                snap = _eligibility_in(store, cursor, item_id=item_id, now=now, requester=requester, single=True)
            if snap is not None:
                return snap
        with _snapshot(store) as cursor:
            snap = _eligibility_in(store, cursor, item_id=item_id, now=now, requester=requester, single=False)
    assert snap is not None  # only a single statement's read gives up
    return snap


def _eligibility_in(
    store: Store, cursor: Any, *, item_id: str, now: int, requester: RequesterOf, single: bool
) -> EligibilitySnapshot | None:
    """:func:`eligibility_read` on ``cursor``; None if ``single`` and the policy needs a second statement."""
    key = item_id.lower()
    dialect = store.engine.dialect
    row_sql = _compile("row", _ROW, dialect, {"item_id": "", "item_key": 0})
    cursor.execute(row_sql.sql, row_sql.args({"item_id": key, "item_key": item_key(key)}))
    row = cursor.fetchone()
    head = None
    if row[_AT["h_block_number"]] is not None:
        head = IndexHead(
            block_number=row[_AT["h_block_number"]],
            block_hash=row[_AT["h_block_hash"]],
            timestamp=row[_AT["h_timestamp"]],
        )
        if head.timestamp is not None:
            now = max(now, head.timestamp)
    item = _item_of(row)
    sale = None if item is None else _sale_of(row)
    if item is None:
        requester(item, sale)
        return EligibilitySnapshot(head, now, None, None, None, None, 0)
    policy = None
    if sale is not None and row[_POLICY_AT["merchant"]] is not None:
        policy = PolicyRow.from_row(_View(row, _POLICY_AT))
    recent = 0
    if needs_recent_returns(policy):
        if single:
            return None
        who = requester(item, sale)
        recent_sql = _compile("recent", RECENT_RETURNS, dialect, {"consumer": "", "since": 0, "now": 0})
        since = now - RECENT_DAYS * DAY
        cursor.execute(recent_sql.sql, recent_sql.args({"consumer": who.lower(), "since": since, "now": now}))
        recent = int(cursor.fetchone()[0])
    else:
        requester(item, sale)
    open_return = None if row[_RETURN_AT["return_id"]] is None else ReturnRow.from_row(_View(row, _RETURN_AT))
    return EligibilitySnapshot(
        head=head,
        now=now,
        item=item,
        sale=sale,
        policy=policy,
        open_return=open_return,
        consumer_returns_90d=recent,
        category=row[_AT["category"]],
    )


@contextmanager
def _snapshot(store: Store, *, single: bool = False) -> Iterator[Any]:
    """A driver cursor in one read transaction (SQLite: ``BEGIN`` on a pooled connection, without
    SQLAlchemy's per-transaction events; PostgreSQL: :func:`read_transaction`, REPEATABLE READ, or with
    ``single``, for one statement, :func:`single_statement`)."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        with (single_statement if single else read_transaction)(engine) as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                yield cursor
            finally:
                cursor.close()
        return
    raw = engine.raw_connection()  # the engine's connect hook made it autocommit: BEGIN is ours
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("BEGIN")
            yield cursor
        finally:
            cursor.execute("ROLLBACK")  # read only: nothing to commit
            cursor.close()
    finally:
        raw.close()


@contextmanager
def _driver_errors() -> Iterator[None]:
    """The driver's own errors (raised by its cursor, outside SQLAlchemy) as the store's."""
    try:
        yield
    except _with_driver_errors(sqlite3.OperationalError) as exc:  # psycopg's too, once a PostgreSQL engine loaded it
        raise StoreUnavailableError(f"database unavailable: {exc}") from exc


def _item_of(row: Sequence[Any]) -> ItemRow | None:
    if row[_ITEM_AT["item_id"]] is None:
        return None
    return ItemRow.from_row(_View(row, _ITEM_AT), is_recalled(row[_AT["last_recall"]], row[_AT["last_back"]]))


def _sale_of(row: Sequence[Any]) -> SaleRow | None:
    at = _SALE_AT
    if row[at["item_id"]] is None:
        return None
    return SaleRow(
        item_id=row[at["item_id"]],
        sale_seq=row[at["sale_seq"]],
        merchant=row[at["merchant"]],
        consumer=row[at["consumer"]],
        token=row[at["token"]],
        price=int(row[at["price"]]),
        policy_version=row[at["policy_version"]],
        order_ref=row[at["order_ref"]],
        sold_at=row[at["sold_at"]],
        block_number=row[at["block_number"]],
        tx_hash=row[at["tx_hash"]],
        returns=int(row[at["return_count"]]),
        closed=bool(row[at["closed"]]),
    )


# ---- the authenticity check's facts -------------------------------------------------------------


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


def item_facts(store: Store, *, item_id: str, role: str) -> ItemFacts | None:
    """The item's facts (see :class:`ItemFacts`), or None if the index does not have the item."""
    key, role_key = item_id.lower(), role.lower()
    reg, rc, ev, r = item_registrations.c, role_changes.c, item_events.c, returns.c
    with read_transaction(store.engine) as conn:
        found = read_item(conn, key)
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
        sale = read_sale(conn, key)
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
                last_return = ReturnRow.from_row(row)
                paid = conn.execute(
                    select(escrow_payouts).where(escrow_payouts.c.return_id == last_return.return_id)
                ).first()
                payout = None if paid is None else PayoutRow.from_row(paid)
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


@dataclass(frozen=True, slots=True)
class SalePage:
    """One page of a merchant's sales, newest first, and the number of its sales overall."""

    rows: tuple[SaleRow, ...]
    count: int


@dataclass(frozen=True, slots=True)
class MerchantCounts:
    """What the index counts of one merchant's business (its dashboard)."""

    sales: int
    returns_by_state: Mapping[ReturnState, int]
    settled_returns: int
    """Returns whose deposit was paid out."""
    sales_by_day: Mapping[int, int]
    """Sales per UTC day (unix seconds // 86400) from ``since`` on."""
    returns_by_day: Mapping[int, int]
    """Returns authorized per UTC day from ``since`` on."""
    sales_by_policy: Mapping[int, int]
    """Sales bound to each policy version."""


def list_sales(store: Store, *, merchant: str, limit: int = 50, offset: int = 0) -> SalePage:
    """The merchant's sales, newest first (each with its returns so far and whether one closed it)."""
    where = _s.merchant == merchant.lower()
    page = (
        select(sales, SALE_RETURNS.label("return_count"), SALE_CLOSED)
        .where(where)
        .order_by(_s.sold_at.desc(), _s.block_number.desc(), _s.item_id)
        .limit(limit)
        .offset(offset)
    )
    with read_transaction(store.engine) as conn:
        count = conn.execute(select(func.count()).select_from(sales).where(where)).scalar_one()
        rows = tuple(_sale(row) for row in conn.execute(page))
    return SalePage(rows, int(count))


def merchant_counts(store: Store, *, merchant: str, since: int) -> MerchantCounts:
    """The merchant's sales and returns counted (by state, by policy version, per day from ``since``), from one
    snapshot of the index: grouped counts, never rows."""
    key = merchant.lower()
    sale_day = (_s.sold_at // DAY).label("day")
    return_day = (_r.authorized_at // DAY).label("day")
    with read_transaction(store.engine) as conn:
        by_policy = {
            int(v): int(n)
            for v, n in conn.execute(
                select(_s.policy_version, func.count()).where(_s.merchant == key).group_by(_s.policy_version)
            )
        }
        by_state = {
            ReturnState(int(state)): int(n)
            for state, n in conn.execute(select(_r.state, func.count()).where(_r.merchant == key).group_by(_r.state))
        }
        settled = conn.execute(
            select(func.count()).select_from(returns).where(_r.merchant == key, _r.settled.is_(True))
        ).scalar_one()
        sales_by_day = {
            int(d): int(n)
            for d, n in conn.execute(
                select(sale_day, func.count()).where(_s.merchant == key, _s.sold_at >= since).group_by(sale_day)
            )
        }
        returns_by_day = {
            int(d): int(n)
            for d, n in conn.execute(
                select(return_day, func.count())
                .where(_r.merchant == key, _r.authorized_at >= since)
                .group_by(return_day)
            )
        }
    return MerchantCounts(
        sales=sum(by_policy.values()),
        returns_by_state=by_state,
        settled_returns=int(settled),
        sales_by_day=sales_by_day,
        returns_by_day=returns_by_day,
        sales_by_policy=by_policy,
    )
