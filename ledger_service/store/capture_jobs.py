"""Queries of ``capture_jobs``: one row per EPCIS capture, its state, counts and refused events.

Invariants: a job's state goes ``running`` -> ``succeeded`` | ``failed`` once (:func:`finish_job` does not
touch a finished job); ``errors`` is the job's full list, written with the final state. A running job has an
``owner`` (the process running it) that renews ``heartbeat_at`` (:func:`heartbeat`); only the owner finishes
it (:func:`finish_job` checks), and another process becomes its owner only by :func:`take_over`, which
succeeds for one process at most and only if the heartbeat it saw is still the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update

from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import capture_jobs

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True, slots=True)
class CaptureJobRow:
    capture_id: str
    key_id: int
    actor: str
    state: str
    document_digest: str
    event_count: int
    captured: int
    duplicates: int
    errors: tuple[dict[str, Any], ...]
    batched: tuple[dict[str, Any], ...]
    """The events sent to the scan batcher instead of the chain, with each item's batch and place."""
    created_at: int
    finished_at: int | None
    owner: str | None = None
    heartbeat_at: int | None = None
    """Unix milliseconds of the owner's last heartbeat (None: a job from before leases)."""


def insert_job(
    store: Store,
    *,
    capture_id: str,
    key_id: int,
    actor: str,
    document_digest: str,
    created_at: int,
    owner: str,
    heartbeat_at: int,
) -> None:
    row = {
        "capture_id": capture_id,
        "key_id": key_id,
        "actor": actor.lower(),
        "state": RUNNING,
        "document_digest": document_digest,
        "event_count": 0,
        "captured": 0,
        "duplicates": 0,
        "errors": [],
        "batched": [],
        "created_at": created_at,
        "finished_at": None,
        "owner": owner,
        "heartbeat_at": heartbeat_at,
    }
    with write_transaction(store.engine) as conn:
        conn.execute(insert(capture_jobs).values(**row))


def update_progress(store: Store, *, capture_id: str, event_count: int, captured: int, duplicates: int) -> None:
    """The running job's counts (a poller's progress)."""
    stmt = (
        update(capture_jobs)
        .where(capture_jobs.c.capture_id == capture_id, capture_jobs.c.state == RUNNING)
        .values(event_count=event_count, captured=captured, duplicates=duplicates)
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def heartbeat(store: Store, *, owners: Sequence[str], now: int) -> int:
    """Renews the heartbeat of every running job of ``owners``; how many."""
    stmt = (
        update(capture_jobs)
        .where(capture_jobs.c.owner.in_(owners), capture_jobs.c.state == RUNNING)
        .values(heartbeat_at=now)
    )
    with write_transaction(store.engine) as conn:
        return int(conn.execute(stmt).rowcount)


def abandoned_jobs(store: Store, *, stale_before: int) -> list[CaptureJobRow]:
    """Running jobs whose owner's last heartbeat is older than ``stale_before`` (or that never had one)."""
    c = capture_jobs.c
    stmt = select(capture_jobs).where(c.state == RUNNING, or_(c.heartbeat_at < stale_before, c.heartbeat_at.is_(None)))
    with read_transaction(store.engine) as conn:
        return [_row(row) for row in conn.execute(stmt)]


def take_over(store: Store, job: CaptureJobRow, *, owner: str, now: int) -> bool:
    """Makes ``owner`` the owner of the running ``job`` as read by :func:`abandoned_jobs`, unless its owner or
    heartbeat changed since (it is alive, or another process took it first)."""
    c = capture_jobs.c
    stmt = (
        update(capture_jobs)
        .where(
            c.capture_id == job.capture_id,
            c.state == RUNNING,
            c.owner.is_(None) if job.owner is None else c.owner == job.owner,
            c.heartbeat_at.is_(None) if job.heartbeat_at is None else c.heartbeat_at == job.heartbeat_at,
        )
        .values(owner=owner, heartbeat_at=now)
    )
    with write_transaction(store.engine) as conn:
        return int(conn.execute(stmt).rowcount) == 1


def owner_of(store: Store, capture_id: str) -> str | None:
    """The owner of a running job (None when it is not running)."""
    c = capture_jobs.c
    with read_transaction(store.engine) as conn:
        owner = conn.execute(select(c.owner).where(c.capture_id == capture_id, c.state == RUNNING)).scalar()
    return None if owner is None else str(owner)


def finish_job(
    store: Store,
    *,
    capture_id: str,
    owner: str,
    state: str,
    event_count: int,
    captured: int,
    duplicates: int,
    errors: Sequence[dict[str, Any]],
    finished_at: int,
    batched: Sequence[dict[str, Any]] = (),
) -> None:
    stmt = (
        update(capture_jobs)
        .where(capture_jobs.c.capture_id == capture_id, capture_jobs.c.state == RUNNING, capture_jobs.c.owner == owner)
        .values(
            state=state,
            event_count=event_count,
            captured=captured,
            duplicates=duplicates,
            errors=list(errors),
            batched=list(batched),
            finished_at=finished_at,
        )
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def job(store: Store, capture_id: str) -> CaptureJobRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(capture_jobs).where(capture_jobs.c.capture_id == capture_id)).first()
    return None if row is None else _row(row)


def _row(row: Any) -> CaptureJobRow:
    return CaptureJobRow(
        capture_id=row.capture_id,
        key_id=row.key_id,
        actor=row.actor,
        state=row.state,
        document_digest=row.document_digest,
        event_count=row.event_count,
        captured=row.captured,
        duplicates=row.duplicates,
        errors=tuple(dict(e) for e in row.errors),
        batched=tuple(dict(b) for b in row.batched),
        created_at=row.created_at,
        finished_at=row.finished_at,
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
    )
