"""``ledger-indexer follow``'s Prometheus endpoint (LEDGER_INDEXER_METRICS_PORT), as a real process on anvil:
its head, checkpoint and lag gauges follow the chain, events are counted by type, and a real reorg
(anvil_reorg) raises the reorg counter and records its depth."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import Chain, cli_env, run_cli, start_cli
from tests.ledger_service.indexer.test_reorgs import some_blocks
from tests.support.chain import free_port
from tests.support.metrics import Samples, parse, value


def scrape(url: str) -> Samples:
    return parse(httpx.get(url, timeout=5).text)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_follow_serves_its_position_events_and_reorgs(
    chain: Chain, sqlite_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    chain.activity.lifecycle()
    base_items = chain.activity.register(3)
    port = free_port()
    env = cli_env(chain, sqlite_url, LEDGER_INDEXER_METRICS_PORT=str(port), LEDGER_FINALITY_DEPTH="5")
    procs.append(start_cli(["follow", "--poll-interval", "0.05"], env, log=tmp_path / "follow.log"))
    url = f"http://127.0.0.1:{port}/metrics"

    def at_head() -> bool:
        try:
            samples = scrape(url)
        except httpx.HTTPError:
            return False
        return value(samples, "ledger_indexer_checkpoint_block") == chain.head

    wait_for(at_head, "the follower's checkpoint gauge to reach the head")
    samples = scrape(url)
    assert value(samples, "ledger_indexer_head_block") == chain.head
    assert value(samples, "ledger_indexer_lag_blocks") == 0
    assert value(samples, "ledger_indexer_lag_seconds") == 0
    store = Store.open(sqlite_url)
    try:
        counts = store.counts()
    finally:
        store.close()
    # every registration the index holds was counted once, under its event type
    assert value(samples, "ledger_indexer_events_total", type="ItemRegistered") == counts["item_registrations"]
    assert value(samples, "ledger_indexer_reorgs_total") == 0

    some_blocks(chain, base_items)
    wait_for(at_head, "the follower to index the new blocks")
    replacement = [[chain.activity.reorg_tx(base_items, 4), 0], [chain.activity.reorg_tx(base_items[:1], 2), 2]]
    chain.node.rpc("anvil_reorg", [3, replacement])

    def reorged() -> bool:
        return value(scrape(url), "ledger_indexer_reorgs_total") >= 1 and at_head()

    wait_for(reorged, "the reorg to be counted")
    samples = scrape(url)
    assert value(samples, "ledger_indexer_reorgs_total") == 1
    assert value(samples, "ledger_indexer_reorg_depth_blocks_count") == 1
    assert value(samples, "ledger_indexer_reorg_depth_blocks_sum") == 3
    assert procs[0].poll() is None, (tmp_path / "follow.log").read_text()


def test_follow_on_a_busy_metrics_port_says_which_setting_to_change(chain: Chain, sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = cli_env(chain, sqlite_url, LEDGER_INDEXER_METRICS_PORT=str(port))
        done = run_cli(["follow"], env, timeout=60)
    assert done.returncode != 0
    assert f"127.0.0.1:{port}" in done.stderr and "LEDGER_INDEXER_METRICS_PORT" in done.stderr
    assert "Traceback" not in done.stderr
