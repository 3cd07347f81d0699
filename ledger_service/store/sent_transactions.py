"""The relayer's nonce manager in the database (``sent_transactions``), shared by every API worker and replica.

:class:`SentTransactions` is the :class:`ledger_service.chain.nonces.NonceBook` the API gives its senders.
Holding a signer: on PostgreSQL a session advisory lock keyed by the chain and the signer (other signers are not
held up), taken on a connection of its own; each read or record is a transaction of its own on it, so a record is
committed before the holder broadcasts the transaction. On SQLite the database has a single writer, which must
not wait on the node's answers (every other write of the service would wait with it): the signer is held by a
POSIX lock on a file beside the database (``<index>.signers.lock``, one byte per signer) and a thread lock, and
each read or record is a short write transaction of its own.

Invariants: one row per (chain, signer, nonce); an unsettled row's ``hashes`` only grow (a settled nonce a reorg
freed starts again with its new transaction); settled rows far below a signer's latest nonce are deleted, so
the table holds about the signers' recent transactions.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from ledger_service.core.transactions import SentRecord
from ledger_service.store._db import sqlite_path, translate_errors, write_transaction
from ledger_service.store.handle import Store
from ledger_service.store.tables import sent_transactions

__all__ = ["SETTLED_KEPT", "SentTransactions"]

SETTLED_KEPT = 256
"""Settled nonces kept per signer below its latest settled one (older rows are deleted)."""

_TABLE = sent_transactions


T = TypeVar("T")


class _Held:
    def __init__(self, run: Callable[[Callable[[Connection], Any]], Any], chain_id: int, signer: str) -> None:
        self._run = run
        """Runs a function on a connection: the holder's own transaction (PostgreSQL), or a short write
        transaction of its own (SQLite, whose writer lock must not wait on the node's answers)."""
        self._where = (_TABLE.c.chain_id == chain_id, _TABLE.c.signer == signer)
        self._key = {"chain_id": chain_id, "signer": signer}

    def next_nonce(self) -> int | None:
        top = self._run(
            lambda conn: conn.execute(select(func.max(_TABLE.c.nonce)).where(*self._where)).scalar_one_or_none()
        )
        return None if top is None else int(top) + 1

    def unsettled(self) -> list[SentRecord]:
        query = select(_TABLE).where(*self._where, _TABLE.c.mined_hash.is_(None)).order_by(_TABLE.c.nonce)
        records: list[SentRecord] = self._run(lambda conn: [_record(row) for row in conn.execute(query)])
        return records

    def get(self, nonce: int) -> SentRecord | None:
        row = self._run(lambda conn: conn.execute(select(_TABLE).where(*self._where, _TABLE.c.nonce == nonce)).first())
        return None if row is None else _record(row)

    def record(self, sent: SentRecord) -> None:
        self._run(lambda conn: self._record(conn, sent))

    def forget(self, nonce: int, tx_hash: str) -> None:
        at = (_TABLE.c.nonce == nonce, _TABLE.c.hashes == tx_hash, _TABLE.c.mined_hash.is_(None))
        self._run(lambda conn: conn.execute(delete(_TABLE).where(*self._where, *at)))

    def _record(self, conn: Connection, sent: SentRecord) -> None:
        row = conn.execute(select(_TABLE).where(*self._where, _TABLE.c.nonce == sent.nonce)).first()
        if row is None:
            conn.execute(_TABLE.insert().values(**self._key, **_values(sent, sent.hashes, sent.sent_at)))
            return
        at = _TABLE.c.nonce == sent.nonce
        if row.mined_hash is not None:  # a settled nonce a reorg freed, used again: a new transaction
            fresh = _values(sent, sent.hashes, sent.sent_at)
            conn.execute(update(_TABLE).where(*self._where, at).values(**fresh, mined_hash=None))
            return
        known = _record(row)
        merged = _values(sent, known.hashes + sent.hashes, known.sent_at)
        conn.execute(update(_TABLE).where(*self._where, at).values(**merged))


def _in_transaction(conn: Connection, work: Callable[[Connection], T]) -> T:
    with translate_errors(), conn.begin():
        return work(conn)


_local_holds: dict[tuple[str, int, str], threading.Lock] = {}
_local_holds_lock = threading.Lock()


def _local_hold(path: str, chain_id: int, signer: str) -> threading.Lock:
    """This process's lock of a signer (POSIX record locks exclude other processes only, not other threads)."""
    with _local_holds_lock:
        return _local_holds.setdefault((path, chain_id, signer), threading.Lock())


class SentTransactions:
    """The database's record of sent transactions (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._engine = store.engine
        self._postgres = store.engine.dialect.name == "postgresql"
        database = sqlite_path(str(store.engine.url))
        self._lock_file = None if database is None else database.with_name(database.name + ".signers.lock")

    @contextmanager
    def hold(self, chain_id: int, signer: str) -> Iterator[_Held]:
        if self._postgres:
            with self._postgres_hold(chain_id, signer) as conn:
                yield _Held(functools.partial(_in_transaction, conn), chain_id, signer)
            return
        with self._sqlite_hold(chain_id, signer):
            yield _Held(self._short_write, chain_id, signer)

    @contextmanager
    def _postgres_hold(self, chain_id: int, signer: str) -> Iterator[Connection]:
        """A connection holding the signer's session advisory lock (released when it lets go, or by the server
        when the process dies), on which each read or record is a transaction of its own, committed at once."""
        key = {"key": _lock_key(chain_id, signer)}
        with translate_errors(), self._engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), key)
            conn.commit()
            try:
                yield conn
            finally:
                if conn.in_transaction():
                    conn.rollback()
                with contextlib.suppress(DBAPIError):  # a lost connection's session took its lock with it
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                    conn.commit()

    def _short_write(self, work: Callable[[Connection], T]) -> T:
        with write_transaction(self._engine) as conn:
            return work(conn)

    @contextmanager
    def _sqlite_hold(self, chain_id: int, signer: str) -> Iterator[None]:
        """The signer held on SQLite without its writer lock: a thread lock in this process and, across processes,
        a POSIX lock of one byte of a file beside the database, chosen by the signer (another signer's byte is
        another lock, most likely)."""
        path = str(self._lock_file) if self._lock_file is not None else ":memory:"
        with _local_hold(path, chain_id, signer):
            if self._lock_file is None:  # an in-memory database: one process only
                yield
                return
            offset = _lock_key(chain_id, signer) & 0x7FFF_FFFF
            with self._lock_file.open("a+b") as handle:
                fcntl.lockf(handle, fcntl.LOCK_EX, 1, offset)
                try:
                    yield
                finally:
                    fcntl.lockf(handle, fcntl.LOCK_UN, 1, offset)

    def settle(self, chain_id: int, signer: str, nonce: int, tx_hash: str) -> None:
        where = (_TABLE.c.chain_id == chain_id, _TABLE.c.signer == signer)
        with write_transaction(self._engine) as conn:
            conn.execute(update(_TABLE).where(*where, _TABLE.c.nonce == nonce).values(mined_hash=tx_hash))
            conn.execute(
                delete(_TABLE).where(*where, _TABLE.c.mined_hash.is_not(None), _TABLE.c.nonce < nonce - SETTLED_KEPT)
            )

    def recorded(self, chain_id: int, signer: str) -> list[tuple[int, tuple[str, ...], str | None]]:
        """Every row of ``signer`` by nonce: (nonce, hashes sent, hash mined), for operators and tests."""
        with write_transaction(self._engine) as conn:
            rows = conn.execute(
                select(_TABLE.c.nonce, _TABLE.c.hashes, _TABLE.c.mined_hash)
                .where(_TABLE.c.chain_id == chain_id, _TABLE.c.signer == signer)
                .order_by(_TABLE.c.nonce)
            )
            return [(int(n), tuple(h.split(",")), m) for n, h, m in rows]


def _lock_key(chain_id: int, signer: str) -> int:
    """A signed 64-bit advisory lock key of the signer on the chain (the namespace keeps it apart from the
    indexer's writer lock)."""
    digest = hashlib.sha256(f"ledger-signer:{chain_id}:{signer}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _values(sent: SentRecord, hashes: tuple[str, ...], sent_at: float) -> dict[str, object]:
    return {
        "nonce": sent.nonce,
        "raw": sent.raw,
        "hashes": ",".join(hashes),
        "max_fee_per_gas": sent.max_fee_per_gas,
        "priority_fee_per_gas": sent.priority_fee_per_gas,
        "sent_at": sent_at,
    }


def _record(row: object) -> SentRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return SentRecord(
        nonce=int(mapping["nonce"]),
        raw=bytes(mapping["raw"]),
        hashes=tuple(str(mapping["hashes"]).split(",")),
        max_fee_per_gas=int(mapping["max_fee_per_gas"]),
        priority_fee_per_gas=int(mapping["priority_fee_per_gas"]),
        sent_at=float(mapping["sent_at"]),
    )
