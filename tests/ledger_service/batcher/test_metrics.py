"""``ledger-batcher``'s Prometheus endpoint (LEDGER_BATCHER_METRICS_PORT), as a real process on anvil: batches
sealed and anchored are counted with their latency, and a batch the contract refuses (its submitter lost the
carrier role after its scans were acknowledged) shows as stuck, its failures counted, until the role is back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from ledger_service.store import Store
from tests.ledger_service.batcher.conftest import queue
from tests.ledger_service.indexer.conftest import Chain, cli_env
from tests.ledger_service.indexer.test_batches import _register
from tests.ledger_service.indexer.test_metrics import scrape, wait_for
from tests.support.chain import ADMIN, CARRIER, free_port
from tests.support.metrics import summed, value

BATCHER = Path(sys.executable).parent / "ledger-batcher"


def _role(chain: Chain, grant: bool) -> None:
    ledger = chain.deployed.ledger.functions
    role = ledger.CARRIER_ROLE().call()
    change = ledger.grantRole if grant else ledger.revokeRole
    tx = change(role, chain.deployed.accounts[CARRIER]).transact({"from": chain.deployed.accounts[ADMIN]})
    chain.deployed.w3.eth.wait_for_transaction_receipt(tx)


def test_batches_are_counted_and_a_refused_one_shows_stuck_until_it_is_anchored(
    chain: Chain, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    url_db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    items = [_register(chain) for _ in range(2)]
    with Store.open(url_db) as store:
        queue(chain, store, items)
    port = free_port()
    env = cli_env(
        chain,
        url_db,
        LEDGER_BATCHER_METRICS_PORT=str(port),
        LEDGER_BATCH_SEAL_S="0.05",
        LEDGER_BATCH_POLL_S="0.05",
        LEDGER_DOCUMENTS_DIR=str(tmp_path / "documents"),
    )
    with (tmp_path / "batcher.log").open("w") as log:
        procs.append(subprocess.Popen([str(BATCHER)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    url = f"http://127.0.0.1:{port}/metrics"

    def anchored(count: int) -> bool:
        try:
            return value(scrape(url), "ledger_batcher_batches_anchored_total") == count
        except httpx.HTTPError:
            return False

    wait_for(lambda: anchored(1), "the first batch's anchor to be counted")
    samples = scrape(url)
    assert value(samples, "ledger_batcher_batches_sealed_total") == 1
    assert value(samples, "ledger_batcher_anchor_latency_seconds_count") == 1
    assert value(samples, "ledger_batcher_anchor_failures_total") == 0
    assert value(samples, "ledger_batcher_stuck_batches") == 0
    assert value(samples, "ledger_batcher_last_turn_timestamp_seconds") > 0
    # the batcher's anchor transactions are counted as the API's are
    assert summed(samples, "ledger_tx_total", outcome="mined") >= 1

    _role(chain, grant=False)
    try:
        with Store.open(url_db) as store:
            queue(chain, store, items)
        wait_for(
            lambda: value(scrape(url), "ledger_batcher_anchor_failures_total") >= 2,
            "the refused anchor to be retried",
        )
        samples = scrape(url)
        assert value(samples, "ledger_batcher_stuck_batches") == 1
        assert value(samples, "ledger_batcher_batches_sealed_total") == 2
        assert value(samples, "ledger_batcher_batches_anchored_total") == 1
    finally:
        _role(chain, grant=True)
    wait_for(lambda: anchored(2), "the refused batch to be anchored once the role is back")
    assert value(scrape(url), "ledger_batcher_stuck_batches") == 0
