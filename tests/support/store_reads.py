"""Reads of the index that only the tests make: the eligibility reference and the per-table reads that
check what the service wrote. The service has no use for them, so they are not in ledger_service.store.

:func:`eligibility_snapshot` is the readable reference that the one-statement read the service uses
(:func:`ledger_service.store.sales.eligibility_read`) is tested against: the same facts, read in one
snapshot, one table at a time, with the store's own definitions of each fact (recalled, closed sale,
open return, recent returns).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from ledger_service.store._db import read_transaction
from ledger_service.store.checkpoint import read_head
from ledger_service.store.handle import Store
from ledger_service.store.items import read_item
from ledger_service.store.policies import PolicyRow, PolicyTermsRow
from ledger_service.store.returns import DAY, RECENT_DAYS, RECENT_RETURNS, ReturnRow, is_open
from ledger_service.store.sales import EligibilitySnapshot, read_sale
from ledger_service.store.tables import document_quota, item_categories, policies, policy_terms, returns


def _read_policy(conn: Connection, merchant: str, version: int) -> PolicyRow | None:
    row = conn.execute(select(policies).where(policies.c.merchant == merchant, policies.c.version == version)).first()
    return None if row is None else PolicyRow.from_row(row)


def _read_open_return(conn: Connection, item_id: str) -> ReturnRow | None:
    r = returns.c
    stmt = select(returns).where(r.item_id == item_id, is_open(r)).order_by(r.block_number.desc(), r.return_id).limit(1)
    row = conn.execute(stmt).first()
    return None if row is None else ReturnRow.from_row(row)


def _read_recent_count(conn: Connection, consumer: str, now: int) -> int:
    params = {"consumer": consumer, "since": now - RECENT_DAYS * DAY, "now": now}
    return int(conn.execute(RECENT_RETURNS, params).scalar_one())


def policy_version(store: Store, *, merchant: str, version: int) -> PolicyRow | None:
    """Version ``version`` of the merchant's policy, or None."""
    with read_transaction(store.engine) as conn:
        return _read_policy(conn, merchant.lower(), version)


def open_return(store: Store, item_id: str) -> ReturnRow | None:
    """The item's open return, or None."""
    with read_transaction(store.engine) as conn:
        return _read_open_return(conn, item_id.lower())


def consumer_recent_returns(store: Store, *, consumer: str, now: int) -> int:
    """How many returns the consumer had authorized in the 90 days up to ``now``."""
    with read_transaction(store.engine) as conn:
        return _read_recent_count(conn, consumer.lower(), now)


def eligibility_snapshot(store: Store, *, item_id: str, requester: str, now: int) -> EligibilitySnapshot:
    """The facts :func:`ledger_service.eligibility.decide` needs from the index, read in one snapshot, one
    table at a time (see the module docstring).

    ``now`` is the caller's clock; the snapshot runs the rules at the later of it and the indexed head's
    timestamp (chain time may run ahead of the wall clock, e.g. on a test chain).
    """
    wanted, requester_key = item_id.lower(), requester.lower()
    with read_transaction(store.engine) as conn:
        head = read_head(conn)
        if head is not None and head.timestamp is not None:
            now = max(now, head.timestamp)
        found = read_item(conn, wanted)
        if found is None:
            return EligibilitySnapshot(head, now, None, None, None, None, 0)
        sale = read_sale(conn, wanted)
        policy = None if sale is None else _read_policy(conn, sale.merchant, sale.policy_version)
        return EligibilitySnapshot(
            head=head,
            now=now,
            item=found[0],
            sale=sale,
            policy=policy,
            open_return=_read_open_return(conn, wanted),
            consumer_returns_90d=_read_recent_count(conn, requester_key, now),
            category=found[1],
        )


@dataclass(frozen=True, slots=True)
class ItemCategoryRow:
    item_id: str
    category: str
    set_by: str
    set_at: int


def item_category(store: Store, item_id: str) -> ItemCategoryRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(item_categories).where(item_categories.c.item_id == item_id.lower())).first()
    return None if row is None else ItemCategoryRow(row.item_id, row.category, row.set_by, row.set_at)


def item_categories_of(store: Store, item_ids: Iterable[str]) -> dict[str, str]:
    """Category by item id, for the items that have one."""
    keys = sorted({item_id.lower() for item_id in item_ids})
    if not keys:
        return {}
    with read_transaction(store.engine) as conn:
        stmt = select(item_categories.c.item_id, item_categories.c.category).where(item_categories.c.item_id.in_(keys))
        return {row.item_id: row.category for row in conn.execute(stmt)}


def list_policy_terms(store: Store, *, merchant: str) -> list[PolicyTermsRow]:
    """The merchant's stored documents, oldest first."""
    stmt = (
        select(policy_terms)
        .where(policy_terms.c.merchant == merchant.lower())
        .order_by(policy_terms.c.created_at, policy_terms.c.digest)
    )
    with read_transaction(store.engine) as conn:
        return [PolicyTermsRow(r.merchant, r.digest, dict(r.document), r.created_at) for r in conn.execute(stmt)]


def uploaded_bytes(store: Store, *, principal: str, day: int) -> int:
    """The bytes ``principal`` has reserved on ``day``."""
    table = document_quota
    stmt = select(table.c.bytes).where(table.c.principal == principal, table.c.day == day)
    with read_transaction(store.engine) as conn:
        value = conn.execute(stmt).scalar()
    return int(value or 0)
