"""``ledger-indexer follow`` killed with SIGKILL at random moments while it resolves anchored scan batches, on both
databases: batches keep being anchored, some of their documents arrive late (holding the later batches back until
they do), and after every kill a new follower takes over. Once the last documents are in and a last run has
settled them, every anchor is applied exactly once and the index equals a clean re-index of the chain."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchedScan, ChainHead
from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.store import Store
from ledger_service.store.batches import anchors, batched_scans_of
from ledger_service.store.tables import BATCH_APPLIED, BATCH_PENDING
from tests.ledger_service.batcher.test_crash import STEPS, _dump_of_index, _index
from tests.ledger_service.indexer.conftest import Chain, cli_env, run_cli, start_cli
from tests.ledger_service.indexer.test_batches import _anchor, _id, _register
from tests.support.batches import next_scans, seal_for
from tests.support.chain import CARRIER

KILLS = 10
ITEMS = 30


def _applied(store: Store) -> int:
    return len(anchors(store, state=BATCH_APPLIED))


def _behind(store: Store, chain: Chain) -> bool:
    checkpoint = store.checkpoint()
    return checkpoint is None or checkpoint.number < chain.head


def _resolvable(store: Store, documents: LocalDocumentStore) -> int:
    """Pending anchors a resolver could settle now: those before the first whose document is not in the store."""
    count = 0
    for anchor in anchors(store, state=BATCH_PENDING):
        if not documents.blob_path(Cid.from_digest(anchor.document_digest)).is_file():
            break
        count += 1
    return count


@pytest.mark.slow
def test_sigkilled_resolvers_leave_every_batch_applied_once_and_the_index_equal_to_a_clean_reindex(
    chain: Chain, store_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    rng = random.Random(2323)
    items = [_register(chain) for _ in range(ITEMS)]
    folder = tmp_path / "documents"
    documents = LocalDocumentStore(folder)
    heads: dict[str, ChainHead] = {}
    late: list[bytes] = []
    """Documents of anchored batches not in the store yet."""
    scans_anchored = 0

    def anchor_batches(count: int) -> None:
        nonlocal scans_anchored
        for _ in range(count):
            scans: list[BatchedScan] = []
            for _ in range(rng.randint(10, 30)):  # up to 900 scans: a batch takes the resolver a while
                scans += next_scans(
                    chain.deployed, heads, rng.sample(items, ITEMS), sender=CARRIER, step=rng.choice(STEPS)
                )
            document = seal_for(chain.deployed, scans, sender=CARRIER)
            if rng.random() < 0.3:
                late.append(batch_document.encode(document))
                _anchor(chain, document, store=None)
            else:
                _anchor(chain, document, store=documents)
            scans_anchored += len(scans)

    env = cli_env(chain, store_url, LEDGER_DOCUMENTS_DIR=str(folder))
    interrupted = 0
    """Kills that landed after a follower had applied a batch and while it still had batches to apply."""
    with Store.open(store_url) as store:  # migrated once here, so each follower starts at once
        anchor_batches(8)
        for kill in range(KILLS):
            anchor_batches(rng.randint(1, 3))
            rng.shuffle(late)
            for data in [late.pop() for _ in range(rng.randint(0, len(late)))]:
                documents.put([data], content_type="application/json")
            before = _applied(store)
            log = tmp_path / f"follow-{kill}.log"
            proc = start_cli(["follow", "--poll-interval", "0.05"], env, log=log)
            procs.append(proc)
            if rng.random() < 0.2:  # while it starts or indexes the new blocks
                time.sleep(rng.uniform(0.1, 1.5))
            else:  # while it resolves: some time after it applied its first batch
                deadline = time.monotonic() + 60
                while (
                    _applied(store) == before
                    and time.monotonic() < deadline
                    and (_behind(store, chain) or _resolvable(store, documents))
                ):
                    assert proc.poll() is None, log.read_text()
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.05))
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            interrupted += _applied(store) > before and _resolvable(store, documents) > 0

        assert interrupted >= 3, f"only {interrupted} kills interrupted a resolver at work: the test proved little"
        for data in late:  # the last documents arrive; a backfill (which settles at its end) finishes the work
            documents.put([data], content_type="application/json")
        final = run_cli(["backfill", "--no-progress"], env, timeout=300)
        assert final.returncode == 0, final.stderr

        rows = anchors(store)
        logs = chain.deployed.anchor.events.BatchAnchored().get_logs(from_block=0)
        assert len(rows) == len(logs) and {a.state for a in rows} == {BATCH_APPLIED}
        indexed = [scan for item in items for scan in batched_scans_of(store, item_id=_id(item))]
        assert len(indexed) == scans_anchored
        for item in items:  # each item's chain whole: seq 0, 1, 2, ... each on the leaf before
            chain_of = batched_scans_of(store, item_id=_id(item))
            assert [s.seq for s in chain_of] == list(range(len(chain_of)))
            assert all(b.prev_hash == a.leaf_hash for a, b in itertools.pairwise(chain_of))

        with tempfile.TemporaryDirectory() as clean, Store.open(f"sqlite:///{clean}/reference.sqlite3") as reference:
            _index(chain, reference, folder)
            assert _dump_of_index(store) == _dump_of_index(reference)
