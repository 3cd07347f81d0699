"""One writer per index: SQLite refuses a second one, PostgreSQL makes it wait and take over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from ledger_service.errors import FatalError
from ledger_service.store import Store, WriterFencedError, writer_lock
from ledger_service.store.lock import _lock_key
from tests.ledger_service.store.builders import ChainBuilder
from tests.support.db import libpq_dsn, terminate_writer_lock, writer_lock_holders

ROOT = Path(__file__).resolve().parents[3]

HOLDER = """
import sys, time
from ledger_service.store import writer_lock
from ledger_service.store.lock import _lock_key
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_in_subprocess(url: str) -> subprocess.Popen[str]:
    """Starts a process that takes the lock and keeps it until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


# ---- SQLite ------------------------------------------------------------------------------


def test_sqlite_second_writer_fails_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    with writer_lock(url):
        # held by this very thread: a waiting lock would hang here, a refusing one raises
        refused = r"another indexer is writing .*index\.sqlite3"
        with pytest.raises(FatalError, match=refused) as raised, writer_lock(url):
            pass  # pragma: no cover
        assert f"pid {os.getpid()}" in str(raised.value)
    with writer_lock(url):  # released on exit
        pass


def test_sqlite_lock_of_another_process_is_refused_and_freed_by_its_death(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    holder = _hold_in_subprocess(url)
    try:
        with pytest.raises(FatalError, match=f"pid {holder.pid}"), writer_lock(url):
            pass  # pragma: no cover
    finally:
        _kill(holder)
    with writer_lock(url):  # SIGKILL leaves no stale lock
        pass


def test_sqlite_locks_of_different_files_are_independent(tmp_path: Path) -> None:
    with writer_lock(f"sqlite:///{tmp_path / 'a.sqlite3'}"), writer_lock(f"sqlite:///{tmp_path / 'b.sqlite3'}"):
        pass


# ---- PostgreSQL --------------------------------------------------------------------------


def _acquire_in_thread(url: str, acquired: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with writer_lock(url):
            acquired.set()
            release.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_postgres_second_writer_waits_then_takes_over_when_the_first_dies(pg_url: str) -> None:
    holder = _hold_in_subprocess(pg_url)
    acquired, release = threading.Event(), threading.Event()
    try:
        with capture_logs() as logs:
            thread = _acquire_in_thread(pg_url, acquired, release)
            assert not acquired.wait(1.5)  # waits while the first one is alive
            killed_at = time.monotonic()
            _kill(holder)
            assert acquired.wait(20)
            took_over_after = time.monotonic() - killed_at
        assert any(entry["event"] == "waiting for the active indexer" for entry in logs)
        print(f"took over {took_over_after:.2f} s after the first writer was killed")
    finally:
        release.set()
        if holder.poll() is None:
            _kill(holder)
    thread.join(10)


def _waiting_in_server(admin: psycopg.Connection[Any], url: str) -> list[int]:
    """Backends whose request for the index's writer lock the server has not granted yet."""
    key = _lock_key(url.rsplit("%3D", 1)[1]) & 0xFFFF_FFFF_FFFF_FFFF
    rows = admin.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s AND objid = %s",
        (key >> 32, key & 0xFFFF_FFFF),
    ).fetchall()
    return [int(pid) for (pid,) in rows]


def test_postgres_standby_waits_in_the_server_and_says_so_until_it_takes_over(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standby's request is queued in the server (granted the moment the holder's session ends, no polling
    interval added to a takeover); the wait is cut now and then to log that it still waits."""
    monkeypatch.setattr("ledger_service.store.lock.WAITING_LOG_EVERY", 0.2)
    holder = _hold_in_subprocess(pg_url)
    acquired, release = threading.Event(), threading.Event()
    try:
        with capture_logs() as logs, psycopg.connect(libpq_dsn(pg_url), autocommit=True) as admin:
            thread = _acquire_in_thread(pg_url, acquired, release)
            deadline = time.monotonic() + 20
            while not _waiting_in_server(admin, pg_url) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waiting_in_server(admin, pg_url), "the standby's request is not queued in the server"
            while sum(e["event"] == "waiting for the active indexer" for e in logs) < 3:
                assert not acquired.is_set() and time.monotonic() < deadline
                time.sleep(0.05)
            _kill(holder)
            assert acquired.wait(20)
            assert _waiting_in_server(admin, pg_url) == []
        assert [e["event"] for e in logs].count("writer lock acquired") == 1
    finally:
        release.set()
        if holder.poll() is None:
            _kill(holder)
    thread.join(10)


def test_postgres_lock_is_released_on_exit(pg_url: str) -> None:
    with writer_lock(pg_url):
        pass
    acquired, release = threading.Event(), threading.Event()
    thread = _acquire_in_thread(pg_url, acquired, release)
    assert acquired.wait(10)
    release.set()
    thread.join(10)


def test_postgres_locks_of_different_schemas_are_independent(pg_url: str) -> None:
    other = pg_url.replace("%3Dtest_", "%3Dother_")
    with writer_lock(pg_url), writer_lock(other):
        pass


def test_postgres_lost_lock_is_taken_again_after_any_other_holder(pg_url: str) -> None:
    """If the server drops the lock's connection (a restart), check() takes the lock again on a new one, waiting
    while another indexer took it meanwhile: the holder never writes on without it."""
    signed = _lock_key(pg_url.rsplit("%3D", 1)[1])

    def holders(admin: psycopg.Connection[Any]) -> list[int]:
        return writer_lock_holders(admin, pg_url)

    with writer_lock(pg_url) as held, psycopg.connect(libpq_dsn(pg_url), autocommit=True) as admin:
        held.check()
        (first,) = holders(admin)
        assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
        assert admin.execute("SELECT pg_advisory_lock(%s)", (signed,)).fetchone() is not None  # a standby took it
        checked = threading.Event()

        def check() -> None:
            held.check()
            checked.set()

        thread = threading.Thread(target=check, daemon=True)
        thread.start()
        assert not checked.wait(0.5)  # it waits while the other holds the lock
        admin.execute("SELECT pg_advisory_unlock(%s)", (signed,))
        thread.join(timeout=30)
        assert checked.is_set()
        (second,) = holders(admin)
        assert second not in (first, admin.info.backend_pid)
        held.check()  # held: nothing to take again
        assert holders(admin) == [second]


# ---- PostgreSQL: fencing of an old writer after a takeover ---------------------------------------------------


def _chain(blocks: int) -> ChainBuilder:
    chain = ChainBuilder()
    for n in range(blocks):
        chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}")
        chain.next_block()
    return chain


def _apply_upto(
    store: Store, chain: ChainBuilder, number: int, before_commit: Callable[[], None] | None = None
) -> None:
    """Applies the chain's blocks above the store's checkpoint up to ``number``, as the indexer's pass does."""
    current = store.checkpoint()
    since = -1 if current is None else current.number
    store.apply(
        events=[ev for ev in chain.events if since < ev.pos.block_number <= number],
        headers=[x for x in chain.headers if since < x.number <= number],
        checkpoint=chain.ref(number),
        prune_below=0,
        before_commit=before_commit,
    )


def test_postgres_old_writers_transaction_after_a_takeover_is_refused_and_writes_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    """The old indexer's lock connection dies unnoticed and a standby takes over: the old one's next write
    transaction is rolled back (nothing of it written, a log line says why), the new writer goes on, the old one
    then waits for the lock like a standby, and the index equals a clean re-index of the same chain."""
    chain = _chain(6)
    with (
        Store.open(pg_url) as old_store,
        Store.open(pg_url) as new_store,
        psycopg.connect(libpq_dsn(pg_url), autocommit=True) as admin,
        writer_lock(pg_url) as old,
    ):
        old_store.fence_writes(old)
        _apply_upto(old_store, chain, 2)
        terminate_writer_lock(admin, pg_url)
        checked = threading.Event()
        with writer_lock(pg_url) as new:
            new_store.fence_writes(new)
            before = new_store.dump()
            with capture_logs() as logs, pytest.raises(WriterFencedError, match="another indexer took the writer"):
                _apply_upto(old_store, chain, 4)
            assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
                "writer fenced: another indexer took the writer lock; this transaction is rolled back and nothing "
                "of it is written, this process waits for the lock again"
            ]
            assert new_store.dump() == before
            assert new_store.checkpoint() == chain.ref(2)

            _apply_upto(new_store, chain, 4)
            _apply_upto(new_store, chain, 6)

            def wait_as_standby() -> None:
                old.check()
                checked.set()

            standby = threading.Thread(target=wait_as_standby, daemon=True)
            standby.start()
            assert not checked.wait(0.5)  # the old writer waits while the new one holds the lock
        standby.join(30)
        assert checked.is_set()  # and takes it when the new one lets it go, with an epoch of its own
        assert old.epoch is not None and new.epoch is not None and old.epoch > new.epoch
        dump = new_store.dump()
    with Store.open(f"sqlite:///{tmp_path / 'clean.sqlite3'}") as clean:
        _apply_upto(clean, chain, 6)
        assert dump == clean.dump()


def test_postgres_takeover_waits_for_the_old_writers_transaction_in_flight(pg_url: str) -> None:
    """A write transaction the old writer began before the takeover holds its epoch: the new writer's lock is
    granted only once that transaction has ended, so the two never write at the same time."""
    chain = _chain(4)
    acquired, release = threading.Event(), threading.Event()
    with (
        Store.open(pg_url) as old_store,
        psycopg.connect(libpq_dsn(pg_url), autocommit=True) as admin,
        writer_lock(pg_url) as old,
    ):
        old_store.fence_writes(old)
        _apply_upto(old_store, chain, 1)
        waited: list[bool] = []

        def take_over_meanwhile() -> None:
            terminate_writer_lock(admin, pg_url)
            _acquire_in_thread(pg_url, acquired, release)
            waited.append(not acquired.wait(0.5))

        _apply_upto(old_store, chain, 2, before_commit=take_over_meanwhile)
        assert waited == [True]  # the standby's takeover waited for the transaction in flight
        assert acquired.wait(20)
        assert old_store.checkpoint() == chain.ref(2)  # that transaction committed: it began as the writer
        with pytest.raises(WriterFencedError):
            _apply_upto(old_store, chain, 3)
        assert old_store.checkpoint() == chain.ref(2)
        release.set()
