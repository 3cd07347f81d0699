"""Anchored scan batches on a real anvil, into SQLite and PostgreSQL: a BatchAnchored log is indexed as a pending
anchor, its document fetched from the document store by digest, checked, and applied whole or refused whole."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from pathlib import Path

from prometheus_client import REGISTRY
from web3 import Web3

from ledger_service.core import batch_document
from ledger_service.core.batch_document import BatchDocument, ChainHead
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.documents.cid import cid_of_bytes
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.indexer.batches import BatchResolver, ResolveStats
from ledger_service.store.batches import WAIT_SCANS, anchor_page, anchors, batched_scans_of
from ledger_service.store.handle import Store
from ledger_service.store.tables import BATCH_APPLIED, BATCH_PENDING, BATCH_REFUSED
from tests.ledger_service.indexer.conftest import (
    Chain,
    cli_env,
    make_indexer_for,
    reference_dump,
    run_cli,
    run_sync,
    start_cli,
)
from tests.support.activity import LOCATION, mine
from tests.support.batches import next_scans, seal_for
from tests.support.chain import CARRIER, MANUFACTURER, MERCHANT, MERCHANT2, free_port

_serials = itertools.count(1)


def _register(chain: Chain) -> str:
    uri = f"urn:epc:id:sgtin:0614141.107346.b{next(_serials)}"
    ledger = chain.deployed.ledger.functions
    chain.activity.send(
        ledger.registerItem(uri, 10614141007346, chain.deployed.accounts[MERCHANT], b"\x22" * 32, LOCATION),
        MANUFACTURER,
    )
    return uri


def _id(uri: str) -> str:
    return "0x" + bytes(Web3.keccak(text=uri)).hex()


def _seal(
    chain: Chain,
    heads: dict[str, ChainHead],
    items: list[str],
    *,
    sender: int = CARRIER,
    step: BizStep = BizStep.DEPARTING,
    age_s: int = 0,
) -> BatchDocument:
    scans = next_scans(chain.deployed, heads, items, sender=sender, step=step, age_s=age_s)
    return seal_for(chain.deployed, scans, sender=sender)


def _anchor(chain: Chain, document: BatchDocument, *, sender: int = CARRIER, store: LocalDocumentStore | None) -> str:
    """Anchors the document (stored first when ``store`` is given): its digest."""
    data = batch_document.encode(document)
    if store is not None:
        store.put([data], content_type="application/json")
    digest = bytes.fromhex(cid_of_bytes(data).hex_digest.removeprefix("0x"))
    chain.activity.anchor_batch(document.root, len(document.scans), digest, sender=sender)
    return "0x" + digest.hex()


def _resolver(chain: Chain, store: Store, documents: LocalDocumentStore, **limits: int) -> BatchResolver:
    return BatchResolver(
        store=store, documents=documents, chain_id=31337, batch_anchor=chain.deployed.anchor.address, **limits
    )


def test_a_batch_is_applied_whole_a_missing_document_waits_and_a_later_batch_continues_the_chains(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain) for _ in range(3)]
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    first = _seal(chain, heads, items)
    _anchor(chain, first, store=documents)
    second = _seal(chain, heads, items[:2], step=BizStep.ARRIVING)
    missing = batch_document.encode(second)
    _anchor(chain, second, store=None)  # its document is not in the store yet
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        assert [a.state for a in anchors(store)] == [BATCH_PENDING, BATCH_PENDING]
        resolver = _resolver(chain, store, documents)

        stats = resolver.run()
        assert (stats.applied, stats.refused, stats.waiting) == (1, 0, 1)
        first_row, second_row = anchors(store)
        assert first_row.state == BATCH_APPLIED and first_row.problem is None
        assert second_row.state == BATCH_PENDING and second_row.attempts == 1
        assert second_row.problem is not None and "not available" in second_row.problem
        scans = batched_scans_of(store, item_id=_id(items[0]))
        assert first.scans[0].item == items[0]  # the document keeps the scans' order: leaf index 0
        assert [(s.seq, s.biz_step, s.leaf_index, s.block_number) for s in scans] == [
            (0, BizStep.DEPARTING, 0, first_row.block_number)
        ]
        assert scans[0].leaf_hash == "0x" + first.leaves()[0].hex()

        documents.put([missing], content_type="application/json")  # the document arrives: retried, applied
        assert resolver.run().applied == 1
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        scans = batched_scans_of(store, item_id=_id(items[0]))
        assert [(s.seq, s.biz_step) for s in scans] == [(0, BizStep.DEPARTING), (1, BizStep.ARRIVING)]
        assert scans[1].prev_hash == scans[0].leaf_hash
        assert len(batched_scans_of(store, item_id=_id(items[2]))) == 1
        indexer.rpc.close()
    finally:
        store.close()


def test_a_batch_breaking_a_rule_is_refused_whole_with_its_reasons(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    items = [_register(chain) for _ in range(2)]
    documents = LocalDocumentStore(tmp_path / "documents")
    # a merchant that is neither the items' merchant of record nor one of its sellers packs them
    wrong_merchant = _seal(chain, {}, items, sender=MERCHANT2, step=BizStep.PACKING)
    _anchor(chain, wrong_merchant, sender=MERCHANT2, store=documents)
    # one registered item and one that is not: nothing of the batch is written
    half = _seal(chain, {}, [items[0], "urn:epc:id:sgtin:0614141.107346.never-registered"])
    _anchor(chain, half, store=documents)
    # a document that does not continue the item's chain (seq 0 again after the batch below is applied)
    good = _seal(chain, {}, [items[1]])
    _anchor(chain, good, store=documents)
    again = _seal(chain, {}, [items[1]], step=BizStep.ARRIVING)
    _anchor(chain, again, store=documents)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        stats = _resolver(chain, store, documents).run()
        assert (stats.applied, stats.refused, stats.waiting) == (1, 3, 0)
        rows = anchors(store)
        assert [a.state for a in rows] == [BATCH_REFUSED, BATCH_REFUSED, BATCH_APPLIED, BATCH_REFUSED]
        assert rows[0].problem is not None and "neither the item's merchant of record" in rows[0].problem
        assert rows[1].problem is not None and "is not registered" in rows[1].problem
        assert rows[3].problem is not None and "expected #1" in rows[3].problem
        assert batched_scans_of(store, item_id=_id(items[0])) == []
        assert [s.seq for s in batched_scans_of(store, item_id=_id(items[1]))] == [0]
        indexer.rpc.close()
    finally:
        store.close()


def test_a_document_whose_root_is_not_the_anchored_one_is_refused(chain: Chain, store_url: str, tmp_path: Path) -> None:
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    document = _seal(chain, {}, [item])
    data = batch_document.encode(document)
    documents.put([data], content_type="application/json")
    digest = bytes.fromhex(cid_of_bytes(data).hex_digest.removeprefix("0x"))
    chain.activity.anchor_batch(b"\x07" * 32, 1, digest)  # the anchor names another root
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        assert _resolver(chain, store, documents).run().refused == 1
        (row,) = anchors(store)
        assert row.state == BATCH_REFUSED and row.problem is not None and "is not the anchored" in row.problem
        assert batched_scans_of(store, item_id=_id(item)) == []
        indexer.rpc.close()
    finally:
        store.close()


def test_a_reorg_removes_the_anchors_and_scans_above_the_common_ancestor(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    _anchor(chain, _seal(chain, {}, [item]), store=documents)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        resolver = _resolver(chain, store, documents)
        assert resolver.run().applied == 1
        chain.node.rpc("anvil_rollback", [1])  # the anchor's block is dropped ...
        mine(chain.node, 2)  # ... and another branch grows past it
        run_sync(indexer)
        assert anchors(store) == []
        assert batched_scans_of(store, item_id=_id(item)) == []
        assert store.dump() == reference_dump(chain)
        indexer.rpc.close()
    finally:
        store.close()


def test_ledger_indexer_applies_batches_after_a_backfill_and_while_following(
    chain: Chain, sqlite_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """The CLI reads documents from LEDGER_DOCUMENTS_DIR: backfill settles what it can at the end, follow
    retries a pending document on every pass until it arrives."""
    items = [_register(chain) for _ in range(2)]
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    _anchor(chain, _seal(chain, heads, items), store=documents)
    later = _seal(chain, heads, items, step=BizStep.ARRIVING)
    _anchor(chain, later, store=None)
    env = cli_env(chain, sqlite_url, LEDGER_DOCUMENTS_DIR=str(tmp_path / "documents"))
    result = run_cli(["backfill", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    with Store.open(sqlite_url) as store:
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_PENDING]
    log = tmp_path / "follow.log"
    follower = start_cli(["follow", "--poll-interval", "0.05"], env, log=log)
    procs.append(follower)
    documents.put([batch_document.encode(later)], content_type="application/json")
    with Store.open(sqlite_url) as store:
        deadline = time.monotonic() + 30
        while anchors(store)[-1].state == BATCH_PENDING and time.monotonic() < deadline:
            assert follower.poll() is None, log.read_text()
            time.sleep(0.05)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        assert [s.seq for s in batched_scans_of(store, item_id=_id(items[1]))] == [0, 1]
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=15) == 0, log.read_text()


def _destroy(chain: Chain, uri: str) -> None:
    inputs = (
        Web3.keccak(text=uri),
        int(BizStep.DESTROYING),
        int(Disposition.DESTROYED),
        LOCATION,
        b"\0" * 32,
        b"\0" * 32,
    )
    chain.activity.send(chain.deployed.ledger.functions.recordEvent(inputs), MERCHANT)


def test_a_scan_of_an_item_destroyed_before_its_anchor_is_refused_one_destroyed_after_it_is_not(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    before, after = _register(chain), _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    late = _seal(chain, {}, [before])  # dated before the destroying event, anchored after it
    _destroy(chain, before)
    _anchor(chain, late, store=documents)
    _anchor(chain, _seal(chain, {}, [after]), store=documents)
    _destroy(chain, after)  # after its batch: the batch stands (both are destroyed in the index when it resolves)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        stats = _resolver(chain, store, documents).run()
        assert (stats.applied, stats.refused) == (1, 1)
        refused, applied = anchors(store)
        assert refused.state == BATCH_REFUSED and refused.problem is not None
        assert f"item {before} was destroyed" in refused.problem
        assert applied.state == BATCH_APPLIED
        assert [s.seq for s in batched_scans_of(store, item_id=_id(after))] == [0]
        indexer.rpc.close()
    finally:
        store.close()


def _given_up() -> float:
    return REGISTRY.get_sample_value("ledger_indexer_batches_total", {"outcome": "given_up"}) or 0.0


def test_a_document_that_never_appears_is_given_up_after_the_wait_by_block_time_and_the_later_batches_go_on(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    """A submitter anchors a root and never publishes its document: the anchor holds the later ones (another
    submitter's included) back until the index's newest block is LEDGER_BATCH_DOCUMENT_WAIT_S past it, then it is
    refused with the reason and they are applied; the document published afterwards changes nothing here."""
    items = [_register(chain) for _ in range(2)]
    documents = LocalDocumentStore(tmp_path / "documents")
    hidden = _seal(chain, {}, [items[0]])
    _anchor(chain, hidden, store=None)
    packed = _seal(chain, {}, [items[1]], sender=MANUFACTURER, step=BizStep.PACKING)
    _anchor(chain, packed, sender=MANUFACTURER, store=documents)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        resolver = _resolver(chain, store, documents, document_wait_s=3_600)
        counted = _given_up()
        stats = resolver.run()
        assert (stats.applied, stats.refused, stats.waiting, stats.given_up) == (0, 0, 1, 0)
        assert [a.state for a in anchors(store)] == [BATCH_PENDING, BATCH_PENDING]

        chain.node.rpc("evm_increaseTime", [3_500])  # not yet an hour by the chain's clock
        mine(chain.node, 1)
        run_sync(indexer)
        assert resolver.run().waiting == 1
        chain.node.rpc("evm_increaseTime", [200])
        mine(chain.node, 1)
        assert resolver.run().waiting == 1  # the node's clock is past the wait, the index's newest block is not
        run_sync(indexer)
        stats = resolver.run()
        assert (stats.applied, stats.refused, stats.waiting, stats.given_up) == (1, 1, 0, 1)
        assert _given_up() == counted + 1
        given_up, applied = anchors(store)
        assert given_up.state == BATCH_REFUSED and given_up.problem is not None
        assert "not available within 3600 s of its anchor" in given_up.problem
        assert given_up.submitter in given_up.problem
        assert applied.state == BATCH_APPLIED
        assert batched_scans_of(store, item_id=_id(items[0])) == []
        assert [s.seq for s in batched_scans_of(store, item_id=_id(items[1]))] == [0]

        # published too late: this index keeps it refused, a clean re-index (which finds it) applies it
        documents.put([batch_document.encode(hidden)], content_type="application/json")
        assert resolver.run() == ResolveStats()
        assert anchors(store)[0].state == BATCH_REFUSED
        indexer.rpc.close()
    finally:
        store.close()


def test_ledger_indexer_gives_up_after_the_wait_not_on_a_store_that_does_not_answer_and_reopen_batches_reapplies(
    chain: Chain, sqlite_url: str, tmp_path: Path
) -> None:
    """LEDGER_BATCH_DOCUMENT_WAIT_S reaches the CLI's resolver; a document store that does not answer (Kubo down)
    is an outage, not an answer, and gives nothing up. Given up on, the batch's document published late is
    applied by `reopen-batches`, with the later batch that continues its item's chain (refused meanwhile as a
    broken chain), and the index then equals a clean re-index."""
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    hidden = _seal(chain, heads, [item])
    _anchor(chain, hidden, store=None)
    _anchor(chain, _seal(chain, heads, [item], step=BizStep.ARRIVING), store=documents)
    chain.node.rpc("evm_increaseTime", [120])
    mine(chain.node, 1)
    unreachable = cli_env(
        chain, sqlite_url, LEDGER_BATCH_DOCUMENT_WAIT_S="60", LEDGER_IPFS_API_URL=f"http://127.0.0.1:{free_port()}"
    )
    result = run_cli(["backfill", "--no-progress"], unreachable)
    assert result.returncode == 0, result.stderr
    with Store.open(sqlite_url) as store:
        first, _ = anchors(store)
        assert [a.state for a in anchors(store)] == [BATCH_PENDING, BATCH_PENDING]
        assert first.problem is not None and "not available yet" in first.problem

    env = cli_env(chain, sqlite_url, LEDGER_BATCH_DOCUMENT_WAIT_S="60", LEDGER_DOCUMENTS_DIR=str(documents.root))
    result = run_cli(["backfill", "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    assert "batch_document_given_up" in result.stdout + result.stderr
    with Store.open(sqlite_url) as store:
        given_up, broken = anchors(store)
        assert given_up.state == BATCH_REFUSED and given_up.problem is not None
        assert "not available within 60 s" in given_up.problem
        assert broken.state == BATCH_REFUSED and broken.problem is not None and "expected #0" in broken.problem

    documents.put([batch_document.encode(hidden)], content_type="application/json")
    wrong = run_cli(["reopen-batches", "--from-block", "-1"], env)
    assert wrong.returncode == 1 and "--from-block must be a block number" in wrong.stderr
    result = run_cli(["reopen-batches", "--from-block", str(given_up.block_number)], env)
    assert result.returncode == 0, result.stderr
    assert "2 batches from block" in result.stdout and "2 applied" in result.stdout
    with Store.open(sqlite_url) as store:
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        assert [s.seq for s in batched_scans_of(store, item_id=_id(item))] == [0, 1]
        with Store.open(f"sqlite:///{tmp_path / 'reference.sqlite3'}") as reference:
            indexer = make_indexer_for(chain, reference)
            run_sync(indexer)
            indexer.rpc.close()
            assert _resolver(chain, reference, documents).run().applied == 2
            assert store.dump() == reference.dump()


def test_a_batch_with_a_scan_older_than_the_tolerance_before_its_anchor_is_refused(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    """Scans may be dated up to scan_max_age_s before their anchor's block (an offline scanner's backlog), not
    more: the whole batch is refused with the reason, by the anchor's block time."""
    items = [_register(chain) for _ in range(2)]
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    backlog = _seal(chain, heads, [items[0]], age_s=3_000)  # within the hour
    _anchor(chain, backlog, store=documents)
    stale = _seal(chain, {}, [items[1]], age_s=3_700)  # over it by the time it is anchored
    _anchor(chain, stale, store=documents)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        stats = _resolver(chain, store, documents, scan_max_age_s=3_600).run()
        assert (stats.applied, stats.refused) == (1, 1)
        applied, refused = anchors(store)
        assert applied.state == BATCH_APPLIED
        assert refused.state == BATCH_REFUSED and refused.problem is not None
        assert "dated more than 3600 s before their anchor's block" in refused.problem
        assert batched_scans_of(store, item_id=_id(items[1])) == []
        indexer.rpc.close()
    finally:
        store.close()


def _settle_all(resolver: BatchResolver) -> ResolveStats:
    """Runs the resolver until a pass settles nothing, as ledger-indexer does: what the passes did in all."""
    total = ResolveStats()
    while True:
        stats = resolver.run()
        total.applied, total.refused, total.held = (
            total.applied + stats.applied,
            total.refused + stats.refused,
            total.held + stats.held,
        )
        if not (stats.applied or stats.refused):
            return total


def test_a_batch_whose_predecessor_a_reorg_re_anchored_after_it_waits_for_it_and_both_are_applied(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    """Two submitters scan one item: the carrier's batch (seq 0), then the manufacturer's (seq 1, on the carrier's
    leaf). A reorg drops both anchors; the new branch holds the manufacturer's, and the carrier's batcher anchors
    its batch again after it. The manufacturer's batch waits (held pending, the pass going on) until the carrier's
    is applied, then is applied right after it: the index equals a clean re-index, and no scan is lost."""
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    first = _seal(chain, heads, [item])
    second = _seal(chain, heads, [item], sender=MANUFACTURER, step=BizStep.PACKING)
    first_digest = bytes.fromhex(_anchor(chain, first, store=documents)[2:])
    second_digest = bytes.fromhex(_anchor(chain, second, sender=MANUFACTURER, store=documents)[2:])
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        resolver = _resolver(chain, store, documents, document_wait_s=3_600)
        assert _settle_all(resolver).applied == 2

        anchor = chain.deployed.anchor
        data = anchor.functions.anchorBatch(second.root, 1, second_digest)._encode_transaction_data()
        replacement = {"from": chain.deployed.accounts[MANUFACTURER], "to": anchor.address, "data": data}
        chain.node.rpc("anvil_reorg", [2, [[replacement | {"gas": hex(500_000)}, 0]]])
        chain.activity.anchor_batch(first.root, 1, first_digest)  # the carrier's batcher anchors it again
        run_sync(indexer)
        later, again = anchors(store)
        assert (later.submitter, again.submitter) == (
            chain.deployed.accounts[MANUFACTURER].lower(),
            chain.deployed.accounts[CARRIER].lower(),
        )
        assert batched_scans_of(store, item_id=_id(item)) == []  # the reorg took both batches' scans

        stats = resolver.run()  # held, then applied right after the carrier's, in the same pass
        assert (stats.applied, stats.refused, stats.held) == (2, 0, 0)
        assert [a.state for a in anchors(store)] == [BATCH_APPLIED, BATCH_APPLIED]
        assert [(s.seq, s.biz_step) for s in batched_scans_of(store, item_id=_id(item))] == [
            (0, BizStep.DEPARTING),
            (1, BizStep.PACKING),
        ]
        with Store.open(f"sqlite:///{tmp_path / 'reference.sqlite3'}") as reference:
            clean = make_indexer_for(chain, reference)
            run_sync(clean)
            clean.rpc.close()
            assert _settle_all(_resolver(chain, reference, documents, document_wait_s=3_600)).applied == 2
            assert store.dump() == reference.dump()

        # a batch whose predecessor never comes is refused as a broken chain once the wait has passed
        orphan = _seal(chain, {item: ChainHead(5, b"\x01" * 32)}, [item])
        _anchor(chain, orphan, store=documents)
        run_sync(indexer)
        assert resolver.run().held == 1
        chain.node.rpc("evm_increaseTime", [3_600])
        mine(chain.node, 1)
        run_sync(indexer)
        assert resolver.run().refused == 1
        last = anchors(store)[-1]
        assert last.state == BATCH_REFUSED and last.problem is not None and "expected #2" in last.problem
        indexer.rpc.close()
    finally:
        store.close()


def test_a_backfill_applies_a_batch_anchored_before_its_predecessor_within_the_wait_as_a_follower_does(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    """The manufacturer's batch (seq 1) is anchored a minute before the carrier's (seq 0) that it continues. A
    follower resolving after each block holds it, then applies both; a backfill resolving once, its newest block
    far past the wait after both, holds it too (its predecessor may still come), then applies both: the two
    indexes are equal. Without that, the backfill would refuse it at once as a broken chain."""
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    first = _seal(chain, heads, [item])
    second = _seal(chain, heads, [item], sender=MANUFACTURER, step=BizStep.PACKING)
    store = Store.open(store_url)
    try:
        follower = make_indexer_for(chain, store)
        resolver = _resolver(chain, store, documents, document_wait_s=3_600)
        _anchor(chain, second, sender=MANUFACTURER, store=documents)
        run_sync(follower)
        stats = resolver.run()
        assert (stats.applied, stats.refused, stats.held) == (0, 0, 1)
        (held,) = anchors(store)
        assert held.state == BATCH_PENDING and held.problem is not None
        assert "waiting for the scans this batch continues" in held.problem and "expected #0" in held.problem
        # listed as held, its document had (no failed fetch counted), not as a document that could not be had
        (listed,) = anchor_page(store, limit=10).anchors
        assert (listed.waiting, listed.row.attempts) == (WAIT_SCANS, 0)

        chain.node.rpc("evm_increaseTime", [60])
        _anchor(chain, first, store=documents)
        run_sync(follower)
        stats = _settle_all(resolver)
        assert (stats.applied, stats.refused) == (2, 0)
        assert [(s.seq, s.biz_step) for s in batched_scans_of(store, item_id=_id(item))] == [
            (0, BizStep.DEPARTING),
            (1, BizStep.PACKING),
        ]
        chain.node.rpc("evm_increaseTime", [10 * 3_600])
        mine(chain.node, 1)
        run_sync(follower)
        assert resolver.run() == ResolveStats()
        follower.rpc.close()

        with Store.open(f"sqlite:///{tmp_path / 'backfill.sqlite3'}") as backfilled:
            indexer = make_indexer_for(chain, backfilled)
            run_sync(indexer)
            indexer.rpc.close()
            stats = _settle_all(_resolver(chain, backfilled, documents, document_wait_s=3_600))
            assert (stats.applied, stats.refused) == (2, 0)
            assert store.dump() == backfilled.dump()
    finally:
        store.close()


def test_a_held_batch_is_refused_when_the_pass_reaches_an_anchor_the_wait_after_it_not_for_the_head_alone(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    """A backfill over a held batch whose predecessor is anchored the wait after it refuses it as a broken chain
    just before it reaches the predecessor, as a follower does, and applies the predecessor."""
    item = _register(chain)
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    first = _seal(chain, heads, [item])
    second = _seal(chain, heads, [item], sender=MANUFACTURER, step=BizStep.PACKING)
    _anchor(chain, second, sender=MANUFACTURER, store=documents)
    chain.node.rpc("evm_increaseTime", [3_600])
    _anchor(chain, first, store=documents)
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        stats = _resolver(chain, store, documents, document_wait_s=3_600).run()
        assert (stats.applied, stats.refused, stats.held) == (1, 1, 0)
        refused, applied = anchors(store)
        assert refused.state == BATCH_REFUSED and refused.problem is not None and "expected #0" in refused.problem
        assert applied.state == BATCH_APPLIED
        indexer.rpc.close()
    finally:
        store.close()
