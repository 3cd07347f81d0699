"""The give-up rule on a real anvil, into SQLite and PostgreSQL: a batch the contract keeps refusing (its submitter
lost the carrier role for good) is marked failed with the contract's reason after the configured refusals, the
batches behind it are sealed again without its scans in their items' chains, anchored, and applied by the
indexer; a failure that is not the contract's refusal never counts towards giving up."""

from __future__ import annotations

from pathlib import Path

from ledger_service.core.codes import BizStep
from ledger_service.store import Store
from ledger_service.store.batches import anchors, batched_scans_of
from ledger_service.store.scan_queue import BATCH_FAILED, batch_by_id
from ledger_service.store.tables import BATCH_ANCHORED, BATCH_APPLIED, BATCH_SEALED
from tests.ledger_service.batcher.conftest import make_batcher, queue
from tests.ledger_service.batcher.test_metrics import _role
from tests.ledger_service.batcher.test_worker import _anchor_logs, _index
from tests.ledger_service.indexer.conftest import Chain
from tests.ledger_service.indexer.test_batches import _id, _register
from tests.support.chain import MANUFACTURER


def _state(store: Store, batch_id: int) -> str:
    batch = batch_by_id(store, batch_id)
    assert batch is not None
    return batch.state


def test_a_batch_refused_for_good_fails_with_its_reason_and_the_later_batches_go_on(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain) for _ in range(2)]
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        batcher = make_batcher(
            chain, store, store_url, documents, batch_seal_s=0.001, batch_give_up_refusals=3, batch_give_up_s=0
        )
        queue(chain, store, items)  # batch 1: the carrier's, anchored
        assert batcher.turn().anchored == 1

        _role(chain, grant=False)
        queue(chain, store, items[:1])  # batch 2: the carrier's, refused from now on
        stats = batcher.turn()
        assert (stats.sealed, stats.anchored, stats.failed, stats.given_up) == (1, 0, 1, 0)
        queue(chain, store, items, step=BizStep.STOCKING, sender=MANUFACTURER)  # batch 3: waits behind batch 2
        stats = batcher.turn()
        assert (stats.sealed, stats.anchored, stats.given_up) == (1, 0, 0)
        waiting = batch_by_id(store, 3)
        assert waiting is not None and waiting.state == BATCH_SEALED
        refused = batch_by_id(store, 2)
        assert refused is not None and refused.state == BATCH_SEALED and refused.refusals == 2
        assert refused.problem is not None and "BatchAnchorNotScanner" in refused.problem

        stats = batcher.turn()  # the third refusal: given up, batch 3 goes back to be sealed again
        assert (stats.given_up, stats.anchored) == (1, 0)
        failed = batch_by_id(store, 2)
        assert failed is not None and failed.state == BATCH_FAILED and failed.refusals == failed.attempts == 3
        assert failed.problem is not None
        assert "BatchAnchorNotScanner" in failed.problem and "given up" in failed.problem
        assert "1 scans are not anchored" in failed.problem
        assert batch_by_id(store, 3).root is None  # type: ignore[union-attr]

        stats = batcher.turn()
        assert (stats.sealed, stats.anchored) == (1, 1)
        assert _state(store, 3) == BATCH_ANCHORED
        assert _state(store, 2) == BATCH_FAILED  # never sent again
        assert _anchor_logs(chain) == 2

        _index(chain, store, documents)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        # the failed scan is in no chain: each item's manufacturer scan follows its first carrier scan
        for item in items:
            scans = batched_scans_of(store, item_id=_id(item))
            assert [(s.seq, s.biz_step) for s in scans] == [(0, BizStep.DEPARTING), (1, BizStep.STOCKING)]
            assert scans[1].prev_hash == scans[0].leaf_hash


def test_refusals_give_up_only_after_the_waiting_time_and_other_failures_do_not_count(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain)]
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        patient = make_batcher(
            chain, store, store_url, documents, batch_seal_s=0.001, batch_give_up_refusals=1, batch_give_up_s=3600
        )
        _role(chain, grant=False)
        try:
            queue(chain, store, items)
            for _ in range(3):
                assert patient.turn().given_up == 0  # refused three times, but within the hour
            refused = batch_by_id(store, 1)
            assert refused is not None and refused.refusals == 3 and refused.state == BATCH_SEALED

            # a failure that is not the contract's (here the document store's disk) never counts as a refusal
            broken = tmp_path / "not-a-folder"
            broken.write_bytes(b"")
            down = make_batcher(chain, store, store_url, broken, batch_give_up_refusals=1, batch_give_up_s=0)
            stats = down.turn()
            assert (stats.failed, stats.given_up) == (1, 0)
            still = batch_by_id(store, 1)
            assert still is not None and still.state == BATCH_SEALED and still.refusals == 3
            assert still.attempts == 4 and still.problem is not None and "Not a directory" in still.problem
        finally:
            _role(chain, grant=True)
        assert patient.turn().anchored == 1  # the role is back: anchored as if nothing happened
        assert _state(store, 1) == BATCH_ANCHORED
