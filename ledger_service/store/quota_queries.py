"""Every SQL statement on the upload quota table (:data:`ledger_service.store.api_schema.document_quota`).

Invariant: a caller's bytes of one UTC day never exceed the limit it was checked against, however
many API workers or threads upload at once: :func:`reserve_upload` adds to the day's row with a
conditional UPDATE (``bytes + n <= limit``) in one transaction, which PostgreSQL re-checks on the
locked row and SQLite runs with the database's write lock held. A caller's rows of earlier days are
deleted when it next reserves, so the table holds about one row per recent uploader.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store.api_schema import document_quota
from ledger_service.store.handle import Store

DAY_S = 86_400


def day_of(timestamp: int) -> int:
    """The UTC day number of unix time ``timestamp``."""
    return timestamp // DAY_S


def reserve_upload(store: Store, *, principal: str, day: int, size: int, limit: int) -> bool:
    """Adds ``size`` bytes to ``principal``'s ``day`` if that keeps it within ``limit``; whether it did."""
    table = document_quota
    with write_transaction(store.engine) as conn:
        conn.execute(delete(table).where(table.c.principal == principal, table.c.day < day))
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(table).values(principal=principal, day=day, bytes=0).on_conflict_do_nothing())
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


def uploaded_bytes(store: Store, *, principal: str, day: int) -> int:
    """The bytes ``principal`` has reserved on ``day``."""
    table = document_quota
    stmt = select(table.c.bytes).where(table.c.principal == principal, table.c.day == day)
    with read_transaction(store.engine) as conn:
        value = conn.execute(stmt).scalar()
    return int(value or 0)
