"""Two indexers on one PostgreSQL index: one writes, the other waits and takes over when the first dies."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from ledger_service.store import writer_lock
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import (
    Chain,
    cli_env,
    make_indexer_for,
    reference_dump,
    start_cli,
    wait_until_indexed,
)
from tests.support.db import libpq_dsn, terminate_writer_lock


def wait_for(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_the_second_indexer_waits_then_takes_over_when_the_first_is_killed(
    chain: Chain, pg_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    chain.activity.lifecycle()
    env = cli_env(chain, pg_url)
    store = Store.open(pg_url)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    def indexed_to_head() -> bool:
        checkpoint = store.checkpoint()
        return checkpoint is not None and checkpoint.number == chain.head

    try:
        first = start_cli(["follow", "--poll-interval", "0.05"], env, log=logs[0])
        procs.append(first)
        wait_for(indexed_to_head, "the first indexer to catch up")
        second = start_cli(["follow", "--poll-interval", "0.05"], env, log=logs[1])
        procs.append(second)
        wait_for(lambda: "waiting for the active indexer" in logs[1].read_text(), "the second indexer to wait")

        chain.activity.lifecycle()  # only the first one writes
        wait_for(indexed_to_head, "the first indexer to index new blocks")
        assert second.poll() is None and "indexed" not in logs[1].read_text()
        assert "indexed" in logs[0].read_text()

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        chain.activity.lifecycle()
        wait_for(indexed_to_head, "the second indexer to take over", timeout=30)
        output = logs[1].read_text()
        assert "writer lock acquired" in output and "indexed" in output
        assert store.dump() == reference_dump(chain)

        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, logs[1].read_text()
    finally:
        store.close()


FENCED = "writer fenced: another indexer took the writer lock; this transaction is rolled back and nothing of it is"
WAITING = "waiting for the active indexer"


@pytest.mark.postgres
def test_a_fenced_indexer_writes_nothing_and_waits_for_the_lock_like_a_standby(chain: Chain, pg_url: str) -> None:
    """The active indexer's lock connection dies between its check of the lock and its pass, and another indexer
    takes the lock meanwhile: the pass is refused and writes nothing, the follow loop goes on by waiting for the
    lock, and takes it when the other one lets it go; the index then equals a clean re-index."""
    chain.activity.lifecycle()
    stop, other_took_it, other_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_indexer() -> None:
        with writer_lock(pg_url):
            other_took_it.set()
            other_done.wait(30)

    with (
        Store.open(pg_url) as store,
        psycopg.connect(libpq_dsn(pg_url), autocommit=True) as admin,
        writer_lock(pg_url) as lock,
    ):
        store.fence_writes(lock)
        indexer = make_indexer_for(chain, store)

        def heartbeat() -> None:
            lock.check()
            if not other_took_it.is_set():  # once: right after the check, before the pass writes
                terminate_writer_lock(admin, pg_url)
                threading.Thread(target=other_indexer, daemon=True).start()
                assert other_took_it.wait(20)

        def follow() -> None:
            try:
                for _ in indexer.follow(stop=stop, poll_interval=0.05, heartbeat=heartbeat):
                    pass
            except BaseException as exc:  # pragma: no cover - reported by the assertions below
                errors.append(exc)

        thread = threading.Thread(target=follow, daemon=True)
        with capture_logs() as logs:
            thread.start()
            try:
                deadline = time.monotonic() + 30
                while not any(e["event"] == WAITING for e in logs) and time.monotonic() < deadline:
                    time.sleep(0.02)
                events = [e["event"] for e in logs]
                assert any(event.startswith(FENCED) for event in events), events
                after_fence = events[[event.startswith(FENCED) for event in events].index(True) :]
                assert WAITING in after_fence
                # the refusal is logged once, as what it is: not again as the node or the database away
                assert not {"rpc_unavailable", "database_unavailable"} & set(after_fence), after_fence
                assert store.checkpoint() is None  # the refused pass wrote nothing
                other_done.set()  # the other indexer stops: this one takes the lock again and indexes
                wait_until_indexed(chain, store, errors)
            finally:
                other_done.set()
                stop.set()
                thread.join(30)
                indexer.rpc.close()
        assert "writer lock taken again" in [e["event"] for e in logs]
        assert not errors
        assert store.dump() == reference_dump(chain)
