"""Idempotency-Key records of the API (``idempotency_keys``, written by the API only).

Each function is one transaction. A record's response body is stored sealed with a key derived from the
caller's credential (:func:`ledger_service.access.seal`), never in plaintext.

Concurrency guarantee callers rely on: of many concurrent :func:`claim_idempotency_key` calls for one
(actor, key), exactly one gets ``None`` (it runs the request); the others get the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, delete, select, update

from ledger_service.store._db import insert_ignore, read_transaction, write_transaction
from ledger_service.store._errors import StoreError
from ledger_service.store.handle import Store
from ledger_service.store.tables import idempotency_keys

__all__ = [
    "IdempotencyRow",
    "claim_idempotency_key",
    "complete_idempotency_key",
    "get_idempotency_key",
    "purge_idempotency_keys",
    "release_idempotency_key",
]


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    actor: str
    key: str
    method: str
    path: str
    request_hash: str
    status: int | None
    """None: the first request is still running."""
    response_body: str | None
    created_at: int
    completed_at: int | None


def _idempotency(row: Row[Any]) -> IdempotencyRow:
    return IdempotencyRow(
        actor=row.actor,
        key=row.idempotency_key,
        method=row.method,
        path=row.path,
        request_hash=row.request_hash,
        status=row.status,
        response_body=row.response_body,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def _idempotency_where(actor: str, key: str) -> Any:
    return and_(idempotency_keys.c.actor == actor, idempotency_keys.c.idempotency_key == key)


def claim_idempotency_key(
    store: Store,
    *,
    actor: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    now: int,
    lease_s: int,
    ttl_s: int | None = None,
) -> IdempotencyRow | None:
    """Claims (actor, key) for a new request: None if this caller now owns it, else the existing row.

    A claim still in progress after ``lease_s`` seconds (its process died) is taken over by a request
    with the same hash. A record created ``ttl_s`` seconds ago or earlier has expired (whether or not the
    purge deleted it yet): it is replaced by the new claim, whatever its request was.
    """
    claim = {
        "actor": actor,
        "idempotency_key": key,
        "method": method,
        "path": path,
        "request_hash": request_hash,
        "status": None,
        "response_body": None,
        "created_at": now,
        "completed_at": None,
    }
    with write_transaction(store.engine) as conn:
        for _ in range(3):  # a claim released between our insert and our select: insert again
            if insert_ignore(conn, idempotency_keys, claim):
                return None
            row = conn.execute(select(idempotency_keys).where(_idempotency_where(actor, key))).first()
            if row is not None:
                break
        else:
            raise StoreError(f"idempotency key {key!r} of {actor} keeps changing; try again")
        existing = _idempotency(row)
        if ttl_s is not None and existing.created_at <= now - ttl_s:
            replaced = conn.execute(
                update(idempotency_keys)
                .where(_idempotency_where(actor, key), idempotency_keys.c.created_at == existing.created_at)
                .values(claim)
            ).rowcount
            if replaced == 1:
                return None
            raise StoreError(f"idempotency key {key!r} of {actor} keeps changing; try again")
        stale = existing.status is None and existing.created_at <= now - lease_s
        if stale and existing.request_hash == request_hash:
            taken = conn.execute(
                update(idempotency_keys)
                .where(
                    _idempotency_where(actor, key),
                    idempotency_keys.c.status.is_(None),
                    idempotency_keys.c.created_at == existing.created_at,
                )
                .values(created_at=now)
            ).rowcount
            if taken == 1:
                return None
        return existing


def complete_idempotency_key(store: Store, *, actor: str, key: str, status: int, response_body: str, now: int) -> None:
    """Stores the response of the request that owns (actor, key)."""
    with write_transaction(store.engine) as conn:
        conn.execute(
            update(idempotency_keys)
            .where(_idempotency_where(actor, key))
            .values(status=status, response_body=response_body, completed_at=now)
        )


def release_idempotency_key(store: Store, *, actor: str, key: str) -> None:
    """Drops an in-progress claim (the request failed without a response worth replaying)."""
    with write_transaction(store.engine) as conn:
        conn.execute(
            delete(idempotency_keys).where(_idempotency_where(actor, key), idempotency_keys.c.status.is_(None))
        )


def get_idempotency_key(store: Store, *, actor: str, key: str) -> IdempotencyRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(idempotency_keys).where(_idempotency_where(actor, key))).first()
    return None if row is None else _idempotency(row)


def purge_idempotency_keys(store: Store, *, created_before: int) -> int:
    """Deletes the records created before ``created_before`` (completed ones, and claims whose process died:
    callers pass a time older than the claims' lease); returns how many."""
    with write_transaction(store.engine) as conn:
        result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < created_before))
        return int(result.rowcount)
