"""ledger-batcher killed with SIGKILL at random moments, again and again, on both databases, while scans keep being
acknowledged and the indexer keeps following: once a last batcher has run, no acknowledged scan is lost (each is in
the index, in the batch and at the place its receipt named), no batch is anchored twice (one BatchAnchored log per
batch, the contract refusing a second), and the index equals a clean re-index of the chain."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ledger_service.core.codes import BizStep
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.batches import BatchResolver
from ledger_service.store import Store
from ledger_service.store.batches import anchors, batched_scans_of
from ledger_service.store.scan_queue import Receipt, batches_in
from ledger_service.store.tables import (
    BATCH_ANCHORED,
    BATCH_APPLIED,
    BATCH_FINAL,
    BATCH_FULL,
    BATCH_OPEN,
    BATCH_SEALED,
    BATCHER_TABLES,
)
from tests.ledger_service.batcher.conftest import queue
from tests.ledger_service.indexer.conftest import Chain, cli_env, make_indexer_for, run_sync
from tests.ledger_service.indexer.test_batches import _id, _register

BATCHER = Path(sys.executable).parent / "ledger-batcher"
KILLS = 12
STEPS = (BizStep.DEPARTING, BizStep.ARRIVING, BizStep.TRANSPORTING)


def _index(chain: Chain, store: Store, documents: Path) -> None:
    """Follows the chain once and settles every anchor whose document is there."""
    indexer = make_indexer_for(chain, store)
    try:
        run_sync(indexer)
    finally:
        indexer.rpc.close()
    BatchResolver(
        store=store, documents=LocalDocumentStore(documents), chain_id=31337, batch_anchor=chain.deployed.anchor.address
    ).run(limit=10_000)


def _dump_of_index(store: Store) -> dict[str, Any]:
    skip = {table.name for table in BATCHER_TABLES}
    return {name: rows for name, rows in store.dump().items() if name not in skip}


def _wait_started(log: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ledger-batcher started" in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    raise AssertionError(f"the batcher did not start: {log.read_text()}")


@pytest.mark.slow
def test_sigkilled_batchers_lose_no_scan_and_anchor_none_twice(
    chain: Chain, store_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    rng = random.Random(23)
    items = [_register(chain) for _ in range(12)]
    documents = tmp_path / "documents"
    env = cli_env(
        chain,
        store_url,
        LEDGER_DOCUMENTS_DIR=str(documents),
        LEDGER_BATCH_MAX_SCANS="7",
        LEDGER_BATCH_SEAL_S="0.05",
        LEDGER_BATCH_POLL_S="0.01",
    )
    receipts: list[Receipt] = []
    cut = 0
    """Kills that left batches unsealed or unanchored behind (the next batcher had to take them over)."""
    with Store.open(store_url) as store:
        for kill in range(KILLS):
            receipts += queue(chain, store, rng.sample(items, rng.randint(10, 12)), step=rng.choice(STEPS), max_scans=7)
            log = tmp_path / f"batcher{kill}.log"
            proc = subprocess.Popen([str(BATCHER)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
            procs.append(proc)
            _wait_started(log, proc)
            receipts += queue(chain, store, rng.sample(items, rng.randint(5, 12)), step=rng.choice(STEPS), max_scans=7)
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            cut += bool(batches_in(store, BATCH_OPEN, BATCH_FULL, BATCH_SEALED))
            _index(chain, store, documents)  # the indexer follows between the kills

        assert cut > 0, "no kill interrupted any work: the test proved nothing"
        # a last batcher, not killed, finishes the work
        time.sleep(0.1)
        finished = subprocess.run([str(BATCHER), "--once"], env=env, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr + finished.stdout
        assert batches_in(store, BATCH_OPEN, BATCH_FULL, BATCH_SEALED) == []
        _index(chain, store, documents)

        batches = batches_in(store, BATCH_ANCHORED, BATCH_FINAL)
        logs = chain.deployed.anchor.events.BatchAnchored().get_logs(from_block=0)
        assert len(logs) == len(batches)  # none anchored twice
        assert sorted("0x" + bytes(log["args"]["root"]).hex() for log in logs) == sorted(b.root or "" for b in batches)
        assert {a.state for a in anchors(store)} == {BATCH_APPLIED}

        # every acknowledged scan is in the index, in its receipt's batch, at its receipt's place
        block_of_root = {a.root: (a.block_number, a.log_index) for a in anchors(store)}
        root_of_batch = {b.id: b.root or "" for b in batches}
        indexed = {
            (scan.block_number, scan.log_index, scan.leaf_index)
            for item in items
            for scan in batched_scans_of(store, item_id=_id(item))
        }
        assert len(indexed) == len(receipts)
        assert {(*block_of_root[root_of_batch[r.batch_id]], r.position) for r in receipts} == indexed

        with tempfile.TemporaryDirectory() as folder, Store.open(f"sqlite:///{folder}/reference.sqlite3") as reference:
            _index(chain, reference, documents)
            assert _dump_of_index(store) == _dump_of_index(reference)
