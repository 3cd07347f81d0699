"""The single-writer lock of an index.

Exactly one indexer may write an index. :func:`writer_lock` elects it:

- PostgreSQL: a session-level advisory lock on a dedicated connection, keyed
  by the index's schema. A second indexer waits for it in the server
  (``pg_advisory_lock``, logging "waiting for the active indexer" every
  :data:`WAITING_LOG_EVERY` seconds) and takes over the moment the first
  releases the lock or dies (its connection closes, the server drops the lock
  and grants it to the waiter: no polling interval to wait out).
  A lost connection (the server restarted, the backend was terminated: the server dropped the lock with it)
  is replaced by :meth:`WriterLock.check`, which takes the lock again on a new one before the holder writes
  on: it waits while another indexer holds it (that one took over meanwhile) and raises
  :class:`StoreUnavailableError` while the server cannot be reached, so the holder retries instead of exiting.
  Fencing: a write transaction of the old holder may still be running on another connection when its lock's
  connection dies and a standby takes over. So the indexer's lock taker increments ``writer_epoch.epoch`` right
  after it gets the advisory lock, and every write transaction of :class:`~ledger_service.store.handle.Store`
  first reads that row ``FOR SHARE`` (:meth:`WriterLock.fence`): the increment waits for an old transaction that
  read it to end, and an old writer's transaction that reads it later finds another epoch and is rolled back
  (:class:`WriterFencedError`, logged as "writer fenced"); its process then waits for the lock like a standby.
  Invariant: once a new holder has taken its epoch, no transaction of an older holder commits.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ledger_service.errors import FatalError
from ledger_service.store._db import sqlite_path
from ledger_service.store._errors import StoreUnavailableError
from ledger_service.store.tables import writer_epoch

log = structlog.get_logger(__name__)

WAITING_LOG_EVERY = 30.0
"""Seconds between repeated "waiting for the active indexer" lines."""
LOCK_NOT_AVAILABLE = "55P03"
"""PostgreSQL's SQLSTATE of a lock wait cut by ``lock_timeout``."""

_NEXT_EPOCH = (
    pg_insert(writer_epoch)
    .values(id=1, epoch=1)
    .on_conflict_do_update(index_elements=[writer_epoch.c.id], set_={"epoch": writer_epoch.c.epoch + 1})
    .returning(writer_epoch.c.epoch)
)
_CURRENT_EPOCH = select(writer_epoch.c.epoch).where(writer_epoch.c.id == 1).with_for_update(read=True)


class WriterFencedError(StoreUnavailableError):
    """Another indexer took the writer lock (this one's connection to it died): the transaction was rolled back,
    nothing of it is written; :meth:`WriterLock.check` then waits for the lock again."""


@dataclass
class WriterLock:
    """A held writer lock; :meth:`check` confirms it is still held (PostgreSQL: the connection is alive)."""

    description: str
    _connection: Connection | None = None
    _take: Callable[[], Connection] | None = None
    """Takes the lock again on a new connection (PostgreSQL), waiting while another process holds it."""
    epoch: int | None = None
    """The indexer's writer epoch (PostgreSQL) taken with the lock; None: no fencing (SQLite, other locks), or an
    index without its table yet (:meth:`~ledger_service.store.handle.Store.fence_writes` takes it then)."""
    fenced: bool = False
    """Whether write transactions are fenced by the epoch (the indexer's lock on PostgreSQL)."""
    _superseded: bool = False

    def fence(self, conn: Connection) -> None:
        """Inside a write transaction on ``conn``, before it writes: raises :class:`WriterFencedError` (after a log
        line) when another holder's epoch replaced this one's, else holds the epoch row until the transaction ends
        so that a new holder's increment waits for it. Nothing to do for an unfenced lock."""
        if not self.fenced:
            return
        if self.epoch is None:
            raise FatalError(f"the writer lock on {self.description} has no epoch yet (call Store.fence_writes)")
        current = conn.execute(_CURRENT_EPOCH).scalar()
        if current == self.epoch:
            return
        self._superseded = True
        log.warning(
            "writer fenced: another indexer took the writer lock; this transaction is rolled back and nothing of it"
            " is written, this process waits for the lock again",
            index=self.description,
            epoch=self.epoch,
            current_epoch=current,
        )
        raise WriterFencedError(
            f"another indexer took the writer lock on {self.description} (writer epoch {current}, this one's "
            f"{self.epoch}); waiting for the lock again"
        )

    def check(self) -> None:
        """Returns when the lock is held: PostgreSQL's lost lock is taken again (see the module docstring);
        raises :class:`StoreUnavailableError` while the server cannot be reached."""
        if self._connection is None:
            return
        if self._superseded:
            reason = "writer fenced: another indexer took over"
        else:
            try:
                self._connection.execute(text("SELECT 1"))
                return
            except SQLAlchemyError as exc:
                if self._take is None:
                    raise FatalError(f"lost the writer lock on {self.description}: {exc}") from exc
                reason = _first_line(exc)
        if self._take is None:  # pragma: no cover - only PostgreSQL's locks have a connection, and all can be retaken
            raise FatalError(f"lost the writer lock on {self.description}: {reason}")
        log.warning("writer lock lost; taking it again", index=self.description, error=reason)
        with suppress(SQLAlchemyError):
            self._connection.close()
        try:
            self._connection = self._take()
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(
                f"lost the writer lock on {self.description} and cannot take it again yet: {_first_line(exc)}"
            ) from exc
        self._superseded = False
        log.info("writer lock taken again", index=self.description, epoch=self.epoch)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def writer_lock(url: str) -> Iterator[WriterLock]:
    """Holds the writer lock of the index at ``url`` for the ``with`` block (see the module docstring)."""
    if make_url(url).get_backend_name() == "sqlite":
        with _sqlite_lock(url) as held:
            yield held
    else:
        with _postgres_lock(url, fenced=True) as held:
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
def batcher_lock(url: str) -> Iterator[WriterLock]:
    """One scan batcher per index: it alone numbers items' batched scans and sends the anchors, in order.
    SQLite: an exclusive ``flock`` on ``<database file>.batcher.lock`` (a second one fails at once);
    PostgreSQL: an advisory lock of its own (a second one waits and takes over when the first dies)."""
    if make_url(url).get_backend_name() == "sqlite":
        with _sqlite_lock(url, suffix=".batcher.lock", who="scan batcher") as held:
            yield held
    else:
        with _postgres_lock(url, purpose="ledger-batcher", who="scan batcher") as held:
            yield held


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
def _postgres_lock(
    url: str, *, purpose: str = "ledger-indexer", who: str = "indexer", fenced: bool = False
) -> Iterator[WriterLock]:
    engine = create_engine(url, poolclass=NullPool)
    where = make_url(url).render_as_string(hide_password=True)
    held = WriterLock(where, fenced=fenced)
    keys: list[int] = []

    def take() -> Connection:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
            keys[:] = [_lock_key(str(schema), purpose)]
            held.description = f"{where} (schema {schema})"
            _wait_for_lock(conn, keys[0], held.description, who=who)
            if fenced:
                held.epoch = _next_epoch(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        held._connection = take()
        held._take = take
        try:
            yield held
        finally:
            with suppress(SQLAlchemyError):  # connection gone: the server already released the lock
                held._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": keys[0]})
            with suppress(SQLAlchemyError):
                held._connection.close()
    finally:
        engine.dispose()


def _wait_for_lock(conn: Connection, key: int, description: str, *, who: str) -> None:
    """Returns once ``conn`` (in autocommit) holds advisory lock ``key``.

    The wait is the server's (``pg_advisory_lock``): it grants the lock as soon as the holder's session ends, where
    polling ``pg_try_advisory_lock`` would add up to a polling interval to every takeover. ``lock_timeout`` cuts
    the wait every :data:`WAITING_LOG_EVERY` seconds, to say in the log that this process still waits."""
    if conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
        return
    waiting_since = time.monotonic()
    conn.execute(text(f"SET lock_timeout = {round(WAITING_LOG_EVERY * 1000)}"))
    try:
        while True:
            log.info(
                f"waiting for the active {who}", index=description, waited_s=round(time.monotonic() - waiting_since)
            )
            try:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                break
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
    finally:
        with suppress(SQLAlchemyError):  # the connection is gone: nothing to reset
            conn.execute(text("RESET lock_timeout"))
    log.info("writer lock acquired", index=description, waited_s=round(time.monotonic() - waiting_since, 1))


def _next_epoch(conn: Connection) -> int | None:
    """:func:`next_epoch` on the lock's connection; None while the index has no ``writer_epoch`` table (a new
    index, or one not migrated yet: :meth:`~ledger_service.store.handle.Store.fence_writes` takes it then)."""
    if conn.execute(text("SELECT to_regclass(:name)"), {"name": writer_epoch.name}).scalar() is None:
        return None
    return next_epoch(conn)


def next_epoch(conn: Connection) -> int:
    """Increments the index's writer epoch and returns it (PostgreSQL; to call while holding the writer lock). It
    waits for a write transaction of an older holder that read the epoch (:meth:`WriterLock.fence`) to end."""
    return int(conn.execute(_NEXT_EPOCH).scalar_one())


def _lock_key(schema: str, purpose: str = "ledger-indexer") -> int:
    """A signed 64-bit advisory lock key for ``purpose`` on the index in ``schema`` (advisory locks are per
    database)."""
    digest = hashlib.blake2b(f"{purpose}/{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
