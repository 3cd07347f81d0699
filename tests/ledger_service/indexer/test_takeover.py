"""Two indexers on one PostgreSQL index: one writes, the other waits and takes over when the first dies."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, cli_env, reference_dump, start_cli


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
