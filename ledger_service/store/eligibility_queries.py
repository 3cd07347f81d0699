"""The eligibility check's read (GET /v1/items/{id}/eligibility): one transaction, one joined statement.

:func:`eligibility_read` reads what :func:`ledger_service.store.queries.eligibility_snapshot` reads
(the checkpoint, the item with its recall state and category, its latest sale with its return count
and closed flag, the sale's policy version, the item's open return) in ONE ``SELECT`` of outer joins,
then, in the same snapshot and only when the policy's fast refund depends on it, the requesting
consumer's returns in the last 90 days. The requester is decided by the caller from the item and sale
just read (e.g. the sale's consumer, for a merchant asking), so the route reads nothing twice.

The facts are defined as in :mod:`ledger_service.store.queries` (its statements' conditions are reused).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Dialect, Select, and_, bindparam, func, literal, or_, select

from ledger_service.core.codes import ReturnState
from ledger_service.store._db import read_transaction
from ledger_service.store._errors import StoreUnavailableError
from ledger_service.store.api_schema import item_categories
from ledger_service.store.handle import Store
from ledger_service.store.queries import (
    _LAST_BACK,
    _LAST_RECALL,
    _RECENT,
    _SALE_CLOSED,
    _SALE_RETURNS,
    DAY,
    OPEN_STATES,
    RECENT_DAYS,
    EligibilitySnapshot,
    IndexHead,
    ItemRow,
    PolicyRow,
    SaleRow,
    _item,
    _policy,
    _return,
)
from ledger_service.store.schema import blocks, checkpoint, item_key, items, policies, returns, sales

__all__ = ["RequesterOf", "eligibility_read", "needs_recent_returns"]

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
    .where(
        _candidate.c.item_id == items.c.item_id,
        or_(
            _candidate.c.state.in_(sorted(int(state) for state in OPEN_STATES)),
            and_(_candidate.c.state == int(ReturnState.REJECTED), _candidate.c.settled.is_(False)),
        ),
    )
    .order_by(_candidate.c.block_number.desc(), _candidate.c.return_id)
    .limit(1)
    .scalar_subquery()
)
_ROW = select(
    checkpoint.c.block_number.label("h_block_number"),
    checkpoint.c.block_hash.label("h_block_hash"),
    blocks.c.timestamp.label("h_timestamp"),
    *(column.label(f"i_{column.name}") for column in items.c),
    _LAST_RECALL.label("last_recall"),
    _LAST_BACK.label("last_back"),
    item_categories.c.category.label("category"),
    *(column.label(f"s_{column.name}") for column in sales.c),
    _SALE_RETURNS.label("s_return_count"),
    _SALE_CLOSED.label("s_closed"),
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
    """Attribute access to one prefix's columns of a result tuple (what the row mappers of
    :mod:`ledger_service.store.queries` read)."""

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
    key = item_id.lower()
    dialect = store.engine.dialect
    row_sql = _compile("row", _ROW, dialect, {"item_id": "", "item_key": 0})
    with _driver_errors(), _snapshot(store) as cursor:
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
        item = _read_item(row)
        sale = None if item is None else _read_sale(row)
        who = requester(item, sale)
        if item is None:
            return EligibilitySnapshot(head, now, None, None, None, None, 0)
        policy = None
        if sale is not None and row[_POLICY_AT["merchant"]] is not None:
            policy = _policy(_View(row, _POLICY_AT))
        open_return = None if row[_RETURN_AT["return_id"]] is None else _return(_View(row, _RETURN_AT))
        recent = 0
        if needs_recent_returns(policy):
            recent_sql = _compile("recent", _RECENT, dialect, {"consumer": "", "since": 0, "now": 0})
            since = now - RECENT_DAYS * DAY
            cursor.execute(recent_sql.sql, recent_sql.args({"consumer": who.lower(), "since": since, "now": now}))
            recent = int(cursor.fetchone()[0])
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
def _snapshot(store: Store) -> Iterator[Any]:
    """A driver cursor in one read transaction (SQLite: ``BEGIN`` on a pooled connection, without
    SQLAlchemy's per-transaction events; PostgreSQL: :func:`read_transaction`, REPEATABLE READ)."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        with read_transaction(engine) as conn:
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
    except (sqlite3.OperationalError, psycopg.OperationalError) as exc:
        raise StoreUnavailableError(f"database unavailable: {exc}") from exc


def _read_item(row: Sequence[Any]) -> ItemRow | None:
    if row[_ITEM_AT["item_id"]] is None:
        return None
    recall, back = row[_AT["last_recall"]], row[_AT["last_back"]]
    return _item(_View(row, _ITEM_AT), recall is not None and (back is None or back < recall))


def _read_sale(row: Sequence[Any]) -> SaleRow | None:
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
