"""Each caller's daily upload quota (``document_quota``, written by the API only).

Invariant: a caller's bytes of one UTC day never exceed the limit it was checked against, however
many API workers or threads upload at once: :func:`reserve_upload` adds to the day's row with a
conditional UPDATE (``bytes + n <= limit``) in one transaction, which PostgreSQL re-checks on the
locked row and SQLite runs with the database's write lock held. A caller's rows of earlier days are
deleted when it next reserves, so the table holds about one row per recent uploader.
"""

from __future__ import annotations

from sqlalchemy import delete, update

from ledger_service.store._db import insert_ignore, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import document_quota

__all__ = ["DAY_S", "day_of", "release_upload", "reserve_upload"]

DAY_S = 86_400


def day_of(timestamp: int) -> int:
    """The UTC day number of unix time ``timestamp``."""
    return timestamp // DAY_S


def reserve_upload(store: Store, *, principal: str, day: int, size: int, limit: int) -> bool:
    """Adds ``size`` bytes to ``principal``'s ``day`` if that keeps it within ``limit``; whether it did."""
    table = document_quota
    with write_transaction(store.engine) as conn:
        conn.execute(delete(table).where(table.c.principal == principal, table.c.day < day))
        insert_ignore(conn, table, {"principal": principal, "day": day, "bytes": 0})
        added = conn.execute(
            update(table)
            .where(table.c.principal == principal, table.c.day == day, table.c.bytes + size <= limit)
            .values(bytes=table.c.bytes + size)
            .execution_options(preserve_rowcount=True)
        )
        return added.rowcount == 1


def release_upload(store: Store, *, principal: str, day: int, size: int) -> None:
    """Gives back ``size`` bytes reserved for an upload that was not stored (never below zero)."""
    table = document_quota
    with write_transaction(store.engine) as conn:
        conn.execute(
            update(table)
            .where(table.c.principal == principal, table.c.day == day, table.c.bytes >= size)
            .values(bytes=table.c.bytes - size)
        )
