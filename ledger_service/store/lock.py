"""The single-writer lock of an index.

Exactly one indexer may write an index. :func:`writer_lock` elects it:

- PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated
  connection, keyed by the index's schema. A second indexer polls (every
  ``poll_interval`` seconds, logging "waiting for the active indexer") and
  takes over as soon as the first releases the lock or dies (its connection
  closes, the server drops the lock).
- SQLite: an exclusive ``flock`` on ``<database file>.lock``. A second
  indexer on the same file fails at once with :class:`FatalError`. The kernel
  drops the lock when the holder dies, so a SIGKILLed indexer never leaves a
  stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ledger_service.errors import FatalError
from ledger_service.store._db import sqlite_path

log = structlog.get_logger(__name__)

WAITING_LOG_EVERY = 30.0
"""Seconds between repeated "waiting for the active indexer" lines."""


@dataclass
class WriterLock:
    """A held writer lock; :meth:`check` confirms it is still held (PostgreSQL: the connection is alive)."""

    description: str
    _connection: Connection | None = None

    def check(self) -> None:
        """Raises :class:`FatalError` if the lock was lost (e.g. PostgreSQL closed the lock's connection)."""
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise FatalError(f"lost the writer lock on {self.description}: {exc}") from exc


@contextmanager
def writer_lock(url: str, *, poll_interval: float = 0.5) -> Iterator[WriterLock]:
    """Holds the writer lock of the index at ``url`` for the ``with`` block (see the module docstring)."""
    if make_url(url).get_backend_name() == "sqlite":
        with _sqlite_lock(url) as held:
            yield held
    else:
        with _postgres_lock(url, poll_interval) as held:
            yield held


@contextmanager
def notify_lock(url: str) -> Iterator[WriterLock]:
    """One notification worker per SQLite index (an exclusive ``flock`` on ``<database file>.notify.lock``,
    dropped by the kernel when the holder dies); on PostgreSQL none: workers share the outbox through
    ``FOR UPDATE SKIP LOCKED`` (store/notifications.py)."""
    if make_url(url).get_backend_name() == "sqlite":
        with _sqlite_lock(url, suffix=".notify.lock", who="notification worker") as held:
            yield held
    else:
        yield WriterLock(make_url(url).render_as_string(hide_password=True))


@contextmanager
def _sqlite_lock(url: str, *, suffix: str = ".lock", who: str = "indexer") -> Iterator[WriterLock]:
    path = sqlite_path(url)
    if path is None:  # in-memory: private to this process anyway
        yield WriterLock("in-memory SQLite")
        return
    database = os.path.abspath(path)
    lock_file = database + suffix
    os.makedirs(os.path.dirname(lock_file), exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder_text = f" (pid {holder})" if holder else ""
            raise FatalError(
                f"another {who} is writing {database}{holder_text}; refusing to start a second one"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield WriterLock(database)
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def _postgres_lock(url: str, poll_interval: float) -> Iterator[WriterLock]:
    engine = create_engine(url, poolclass=NullPool)
    where = make_url(url).render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
            key = _lock_key(str(schema))
            description = f"{where} (schema {schema})"
            waiting_since: float | None = None
            last_log = 0.0
            while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                if now - last_log >= WAITING_LOG_EVERY or last_log == 0.0:
                    log.info("waiting for the active indexer", index=description, waited_s=round(now - waiting_since))
                    last_log = now
                time.sleep(poll_interval)
            if waiting_since is not None:
                log.info("writer lock acquired", index=description, waited_s=round(time.monotonic() - waiting_since, 1))
            try:
                yield WriterLock(description, conn)
            finally:
                with suppress(SQLAlchemyError):  # connection gone: the server already released the lock
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def _lock_key(schema: str) -> int:
    """A signed 64-bit advisory lock key for the index in ``schema`` (advisory locks are per database)."""
    digest = hashlib.blake2b(f"ledger-indexer/{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
