"""Backfill, resume and follow on a real anvil, into SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading

import pytest

from ledger_service.errors import FatalError
from ledger_service.indexer.sync import BlockRange, NewBlocks, RangeSizer, Reorg, pin_of
from ledger_service.store.handle import ChainPin, Store
from tests.ledger_service.indexer.conftest import Chain, make_indexer_for, reference_dump, run_sync
from tests.support.activity import mine


def test_backfill_in_ranges_then_resume_then_follow_equals_a_fresh_reindex(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=3000, items=8)
    store = Store.open(store_url)
    try:
        # one range per transaction here (max_batch_events=1): the ranges themselves are under test
        indexer = make_indexer_for(chain, store, target_logs=300, initial_blocks=2, max_batch_events=1)
        middle = chain.head - 5
        updates = run_sync(indexer, target=middle)
        assert store.checkpoint() is not None and store.checkpoint().number == middle  # type: ignore[union-attr]
        ranges = [u.range for u in updates if isinstance(u, NewBlocks)]
        assert len(ranges) > 3  # adaptive ranges of about target_logs events each
        assert all(b.start == a.end + 1 for a, b in itertools.pairwise(ranges))  # no gap, no overlap
        assert ranges[0].start == chain.deployment.deploy_block

        # a restarted indexer (new objects, same database) resumes at the checkpoint
        indexer.rpc.close()
        indexer = make_indexer_for(chain, store)
        rest = [u for u in run_sync(indexer) if isinstance(u, NewBlocks)]
        assert rest[0].range.start == middle + 1
        assert store.dump() == reference_dump(chain)

        # follow: new blocks appear in the index, empty blocks move the checkpoint
        stop = threading.Event()
        seen: list[NewBlocks] = []

        def follow() -> None:
            for update in indexer.follow(stop=stop, poll_interval=0.05):
                assert isinstance(update, NewBlocks)
                seen.append(update)

        thread = threading.Thread(target=follow)
        thread.start()
        try:
            chain.activity.lifecycle()
            mine(chain.node, 3)
            head = chain.head
            for _ in range(200):
                checkpoint = store.checkpoint()
                if checkpoint is not None and checkpoint.number == head:
                    break
                stop.wait(0.05)
        finally:
            stop.set()
            thread.join(timeout=30)
        assert seen and store.checkpoint().number == head  # type: ignore[union-attr]
        assert store.dump() == reference_dump(chain)
        indexer.rpc.close()
    finally:
        store.close()


def test_the_same_chain_gives_the_same_rows_on_sqlite_and_postgresql(
    chain: Chain, sqlite_url: str, pg_url: str
) -> None:
    chain.activity.lifecycle()
    chain.activity.bulk(events=600, items=4)
    dumps = []
    for url in (sqlite_url, pg_url):
        store = Store.open(url)
        indexer = make_indexer_for(chain, store, target_logs=100)
        run_sync(indexer)
        dumps.append(store.dump())
        indexer.rpc.close()
        store.close()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["item_events"]) > 600


def test_an_index_of_another_deployment_or_chain_is_refused(chain: Chain, sqlite_url: str) -> None:
    chain.activity.lifecycle()
    store = Store.open(sqlite_url)
    try:
        run_sync(make_indexer_for(chain, store))
        before = store.dump()
        other = pin_of(chain.deployment)
        for changed in (
            ChainPin(other.chain_id, other.genesis_hash, "0x" + "ab" * 20, other.escrow_address, other.deploy_block),
            ChainPin(other.chain_id, other.genesis_hash, other.ledger_address, other.escrow_address, 0),
        ):
            indexer = make_indexer_for(chain, store)
            indexer.pin = changed
            with pytest.raises(FatalError, match="wrong chain or deployment"):
                run_sync(indexer)
        indexer = make_indexer_for(chain, store)
        indexer.pin = ChainPin(1, other.genesis_hash, other.ledger_address, other.escrow_address, other.deploy_block)
        with pytest.raises(FatalError, match=r"wrong chain: the node .* serves chain 31337"):
            run_sync(indexer)
        assert store.dump() == before
    finally:
        store.close()


def test_a_node_briefly_behind_the_checkpoint_is_waited_for_not_reorged(chain: Chain, sqlite_url: str) -> None:
    chain.activity.lifecycle()
    store = Store.open(sqlite_url)
    try:
        indexer = make_indexer_for(chain, store)
        run_sync(indexer)
        before = store.dump()
        # the node "loses" its two newest blocks (same chain below): nothing to do, no reorg
        head = chain.head
        chain.node.rpc("anvil_rollback", [2])
        assert chain.head == head - 2
        assert run_sync(indexer) == []
        assert store.dump() == before
        # new, different blocks on top of the shorter chain are a reorg of depth 2
        mine(chain.node, 3)
        updates = run_sync(indexer)
        reorgs = [u for u in updates if isinstance(u, Reorg)]
        assert [r.depth for r in reorgs] == [2]
        assert reorgs[0].common_ancestor.number == head - 2
        assert store.dump() == reference_dump(chain)
    finally:
        store.close()


def test_range_sizer_shrinks_on_large_answers_and_grows_on_small_ones() -> None:
    sizer = RangeSizer(size=100, target_logs=1000)
    sizer.observe(blocks=100, logs=10_000, nbytes=1000)
    assert sizer.size == 10
    sizer.observe(blocks=10, logs=100, nbytes=1000)
    assert sizer.size == 20
    sizer.shrink()
    assert sizer.size == 10
    sizer = RangeSizer(size=1, min_size=1)
    sizer.shrink()
    assert sizer.size == 1
    sizer = RangeSizer(size=64, soft_max_bytes=1000)
    sizer.observe(blocks=64, logs=10, nbytes=64_000)
    assert sizer.size == 1
    assert len(BlockRange(5, 9)) == 5
