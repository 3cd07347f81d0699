"""What the index knows of a consumer address's buying and returning at one merchant (``sales``, ``returns``,
``item_events``, ``policies``), and of that merchant's customers as a whole: the facts the fraud and abuse
signals (:mod:`ledger_service.signals`) score.

Every read is scoped to one merchant: a merchant reviewing a request sees signals computed from its own sales
and returns only, never from what the consumer did at other merchants. Each read goes through an index:
``sales (consumer, sold_at)``, ``returns (consumer, authorized_at)``, ``sales (merchant, sold_at)``, the item
events' ``(item_key, seq)`` and the partial ``biz_transaction`` index.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, select

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.store._db import read_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import item_events, item_key, policies, returns, sales

__all__ = ["ConsumerActivity", "ConsumerReturn", "consumer_activity", "merchant_population", "other_units"]


@dataclass(frozen=True, slots=True)
class ConsumerReturn:
    """One of the consumer's returns: when it was authorized, when the sold unit had been delivered (None: no
    delivery recorded before the return) and the return window of the sale's policy (None: policy unknown)."""

    return_id: str
    item_id: str
    authorized_at: int
    delivered_at: int | None
    window_days: int | None


@dataclass(frozen=True, slots=True)
class ConsumerActivity:
    """A consumer's sales and returns at one merchant in a period (chain time)."""

    consumer: str
    merchant: str
    sales: int
    returns: tuple[ConsumerReturn, ...]


def _delivered_at(conn: Connection, *, item_id: str, after: int, before: int) -> int | None:
    """The first arriving + retail_sold event of the item in ``[after, before]`` (the delivery of the sale
    made at ``after``), as the items fold defines ``delivered_at``."""
    e = item_events
    statement = select(func.min(e.c.timestamp)).where(
        e.c.item_key == item_key(item_id),
        e.c.item_id == item_id,
        e.c.biz_step == int(BizStep.ARRIVING),
        e.c.disposition == int(Disposition.RETAIL_SOLD),
        e.c.timestamp >= after,
        e.c.timestamp <= before,
    )
    value = conn.execute(statement).scalar_one()
    return None if value is None else int(value)


def consumer_activity(store: Store, *, consumer: str, merchant: str, since: int, until: int) -> ConsumerActivity:
    """``consumer``'s sales by ``merchant`` made in ``(since, until]`` and its returns authorized in it."""
    consumer, merchant = consumer.lower(), merchant.lower()
    sold = (
        select(func.count())
        .select_from(sales)
        .where(
            sales.c.consumer == consumer,
            sales.c.merchant == merchant,
            sales.c.sold_at > since,
            sales.c.sold_at <= until,
        )
    )
    returned = (
        select(returns.c.return_id, returns.c.item_id, returns.c.authorized_at, sales.c.sold_at, policies.c.window_days)
        .select_from(
            returns.join(
                sales, and_(sales.c.item_id == returns.c.item_id, sales.c.sale_seq == returns.c.sale_seq)
            ).outerjoin(
                policies,
                and_(policies.c.merchant == sales.c.merchant, policies.c.version == sales.c.policy_version),
            )
        )
        .where(
            returns.c.consumer == consumer,
            returns.c.merchant == merchant,
            returns.c.authorized_at > since,
            returns.c.authorized_at <= until,
        )
        .order_by(returns.c.authorized_at, returns.c.return_id)
    )
    with read_transaction(store.engine) as conn:
        count = int(conn.execute(sold).scalar_one())
        rows = conn.execute(returned).all()
        found = tuple(
            ConsumerReturn(
                return_id=row.return_id,
                item_id=row.item_id,
                authorized_at=int(row.authorized_at),
                delivered_at=_delivered_at(conn, item_id=row.item_id, after=row.sold_at, before=row.authorized_at),
                window_days=None if row.window_days is None else int(row.window_days),
            )
            for row in rows
        )
    return ConsumerActivity(consumer=consumer, merchant=merchant, sales=count, returns=found)


def merchant_population(store: Store, *, merchant: str, since: int, until: int) -> tuple[int, int]:
    """``merchant``'s sales made in ``(since, until]`` and its returns authorized in it: (sales, returns)."""
    merchant = merchant.lower()
    sold = (
        select(func.count())
        .select_from(sales)
        .where(sales.c.merchant == merchant, sales.c.sold_at > since, sales.c.sold_at <= until)
    )
    returned = (
        select(func.count())
        .select_from(returns)
        .where(returns.c.merchant == merchant, returns.c.authorized_at > since, returns.c.authorized_at <= until)
    )
    with read_transaction(store.engine) as conn:
        return int(conn.execute(sold).scalar_one()), int(conn.execute(returned).scalar_one())


def other_units(store: Store, *, return_id: str, item_id: str) -> tuple[str, ...]:
    """Items other than the returned one that have an event naming the return (its id as the event's business
    transaction, e.g. a receiving scan captured with the RMA): the units scanned for the return that are not the
    unit sold. Sorted, each once."""
    e = item_events
    statement = (
        select(e.c.item_id)
        .where(e.c.biz_transaction == return_id.lower(), e.c.item_id != item_id.lower())
        .group_by(e.c.item_id)
        .order_by(e.c.item_id)
    )
    with read_transaction(store.engine) as conn:
        return tuple(row.item_id for row in conn.execute(statement))
