"""Queries of ``capture_jobs``: one row per EPCIS capture, its state, counts and refused events.

Invariant: a job's state goes ``running`` -> ``succeeded`` | ``failed`` once (:func:`finish_job` does not
touch a finished job); ``errors`` is the job's full list, written with the final state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

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
    created_at: int
    finished_at: int | None


def insert_job(
    store: Store, *, capture_id: str, key_id: int, actor: str, document_digest: str, created_at: int
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
        "created_at": created_at,
        "finished_at": None,
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


def finish_job(
    store: Store,
    *,
    capture_id: str,
    state: str,
    event_count: int,
    captured: int,
    duplicates: int,
    errors: Sequence[dict[str, Any]],
    finished_at: int,
) -> None:
    stmt = (
        update(capture_jobs)
        .where(capture_jobs.c.capture_id == capture_id, capture_jobs.c.state == RUNNING)
        .values(
            state=state,
            event_count=event_count,
            captured=captured,
            duplicates=duplicates,
            errors=list(errors),
            finished_at=finished_at,
        )
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def job(store: Store, capture_id: str) -> CaptureJobRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(capture_jobs).where(capture_jobs.c.capture_id == capture_id)).first()
    if row is None:
        return None
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
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
