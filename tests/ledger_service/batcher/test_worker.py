"""ledger-batcher's turns on a real anvil, into SQLite and PostgreSQL: queued scans sealed into batches (every N
scans or after T seconds), numbered in their items' chains across batches, stored, anchored once, found anchored
after a crash instead of sent again, anchored again after a reorg dropped the anchor, and applied by the
indexer exactly as queued."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from ledger_service.batcher import TurnStats
from ledger_service.capture.scans import scan_proof
from ledger_service.core import batch_document
from ledger_service.core.codes import BizStep
from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.batches import BatchResolver
from ledger_service.store import Store
from ledger_service.store.batches import anchors, batched_scans_of
from ledger_service.store.scan_queue import batch_by_id, batches_in
from ledger_service.store.tables import (
    BATCH_ANCHORED,
    BATCH_APPLIED,
    BATCH_FINAL,
    BATCH_FULL,
    BATCH_OPEN,
    BATCH_SEALED,
)
from tests.ledger_service.batcher.conftest import make_batcher, queue
from tests.ledger_service.indexer.conftest import Chain, make_indexer_for, run_sync
from tests.ledger_service.indexer.test_batches import _id, _register


def _index(chain: Chain, store: Store, documents: Path) -> None:
    indexer = make_indexer_for(chain, store)
    try:
        run_sync(indexer)
    finally:
        indexer.rpc.close()
    resolver = BatchResolver(
        store=store,
        documents=LocalDocumentStore(documents),
        chain_id=31337,
        batch_anchor=chain.deployed.anchor.address,
    )
    resolver.run()


def _typed(kind: str, value: str) -> object:
    if kind == "bytes32":
        return bytes.fromhex(value[2:])
    return Web3.to_checksum_address(value) if kind == "address" else int(value)


def _anchor_logs(chain: Chain) -> int:
    return len(chain.deployed.anchor.events.BatchAnchored().get_logs(from_block=0))


def test_full_batches_and_waiting_ones_are_sealed_numbered_anchored_and_indexed_as_queued(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain) for _ in range(3)]
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        # 3 + 3 scans in batches of 4: the first batch is full, the second open and waits for its time
        first = queue(chain, store, items, max_scans=4)
        second = queue(chain, store, items, step=BizStep.ARRIVING, max_scans=4)
        assert [(r.batch_id, r.position) for r in first + second] == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]
        assert [b.state for b in batches_in(store, BATCH_FULL, BATCH_OPEN)] == [BATCH_FULL, BATCH_OPEN]

        batcher = make_batcher(chain, store, store_url, documents, batch_max_scans=4, batch_seal_s=3600)
        stats = batcher.turn()
        assert (stats.sealed, stats.anchored) == (1, 1)  # the open batch is not due yet
        assert batch_by_id(store, 2).state == BATCH_OPEN  # type: ignore[union-attr]

        batcher = make_batcher(chain, store, store_url, documents, batch_max_scans=4, batch_seal_s=0.001)
        assert batcher.turn().anchored == 1
        assert [b.state for b in batches_in(store, BATCH_ANCHORED)] == [BATCH_ANCHORED, BATCH_ANCHORED]
        assert _anchor_logs(chain) == 2

        _index(chain, store, documents)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        # item 0 was scanned first and fourth: seq 0 and 1, linked, both in batch 1, at leaf 0 and 3
        scans = batched_scans_of(store, item_id=_id(items[0]))
        assert [(s.seq, s.biz_step, s.leaf_index) for s in scans] == [
            (0, BizStep.DEPARTING, 0),
            (1, BizStep.ARRIVING, 3),
        ]
        assert scans[1].prev_hash == scans[0].leaf_hash
        # the receipts' positions are the leaves' places in the anchored documents
        batch = batch_by_id(store, 2)
        assert batch is not None and batch.document is not None and batch.document_digest is not None
        document = batch_document.decode(LocalDocumentStore(documents).read(Cid.from_digest(batch.document_digest)))
        assert [scan.item for scan in document.scans] == [items[1], items[2]]
        assert [s.seq for s in batched_scans_of(store, item_id=_id(items[1]))] == [0, 1]  # across the batches

        # a receipt's scan is proven against the anchored root by the contract itself
        made = scan_proof(batch.document, 1)
        assert made.scan["item"] == items[2]
        leaf = tuple(_typed(kind, value) for kind, value in zip(batch_document.LEAF_ENCODING, made.values, strict=True))
        root, path = bytes.fromhex(made.root[2:]), [bytes.fromhex(node[2:]) for node in made.proof]
        assert chain.deployed.anchor.functions.verifyScan(leaf, root, path).call()
        seq = leaf[1]
        assert isinstance(seq, int)
        forged = (leaf[0], seq + 1, *leaf[2:])
        assert not chain.deployed.anchor.functions.verifyScan(forged, root, path).call()

        # past the finality depth the anchors are final
        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        assert batcher.turn().final == 2
        assert {b.state for b in batches_in(store, BATCH_FINAL)} == {BATCH_FINAL}


def test_a_restarted_batcher_finds_an_anchor_sent_before_the_crash_and_does_not_send_it_again(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain) for _ in range(2)]
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        queue(chain, store, items)
        crashed = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        crashed.seal_due(stats := TurnStats())
        (sealed,) = batches_in(store, BATCH_SEALED)
        assert sealed.root is not None and sealed.document_digest is not None
        # the crash came after the transaction was sent and before the batcher recorded it
        chain.activity.anchor_batch(
            bytes.fromhex(sealed.root[2:]), sealed.scan_count, bytes.fromhex(sealed.document_digest[2:])
        )
        LocalDocumentStore(documents).put([sealed.document or b""], content_type="application/json")
        restarted = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        assert restarted.turn().anchored == 1
        assert stats.sealed == 1
        assert _anchor_logs(chain) == 1
        assert [b.id for b in batches_in(store, BATCH_ANCHORED)] == [sealed.id]
        _index(chain, store, documents)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED]


def test_an_anchor_a_reorg_dropped_is_anchored_again(chain: Chain, store_url: str, tmp_path: Path) -> None:
    items = [_register(chain) for _ in range(2)]
    documents = tmp_path / "documents"
    w3 = chain.deployed.w3
    with Store.open(store_url) as store:
        queue(chain, store, items)
        batcher = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        assert batcher.turn().anchored == 1
        (anchored,) = batches_in(store, BATCH_ANCHORED)
        assert anchored.anchor_block == w3.eth.block_number
        # the anchor's block and one after it are replaced by empty blocks: the transaction is gone
        w3.provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
        w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]
        anchor = chain.deployed.anchor.functions
        submitter, root = chain.deployed.accounts[3], bytes.fromhex((anchored.root or "")[2:])
        assert not anchor.isAnchored(submitter, root).call()
        stats = batcher.turn()
        assert stats.reanchored == 1
        assert batcher.turn().anchored == 1
        assert anchor.isAnchored(submitter, root).call()
        (again,) = batches_in(store, BATCH_ANCHORED)
        assert again.root == anchored.root and again.anchor_block_hash != anchored.anchor_block_hash
        _index(chain, store, documents)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED]
        assert len(batched_scans_of(store, item_id=_id(items[0]))) == 1
