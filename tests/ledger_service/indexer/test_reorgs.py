"""Reorgs made by anvil_reorg / anvil_rollback while the indexer follows the chain.

After each reorg the index must equal a fresh full re-index of the canonical
chain (every table's rows, not counts); a reorg deeper than finality stops the
indexer with a clear error and leaves the index as it was.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ledger_service.errors import FatalError
from ledger_service.indexer.sync import Reorg, SyncUpdate
from ledger_service.store.store import Store
from tests.ledger_service.indexer.conftest import (
    Chain,
    cli_env,
    make_indexer_for,
    reference_dump,
    run_cli,
    run_sync,
    wait_until_indexed,
)
from tests.support.activity import PRICE, mine
from tests.support.chain import CONSUMER, MERCHANT

FINALITY = 5


def some_blocks(chain: Chain, base_items: list[bytes]) -> None:
    """Five blocks touching items, sales and returns, so a reorg undoes state of every kind."""
    activity, escrow = chain.activity, chain.deployed.escrow.functions
    (item,) = activity.register(1)
    token = chain.deployed.token.address
    activity.send(
        escrow.recordSale(item, chain.deployed.accounts[CONSUMER], token, PRICE, b"\x01" * 32, b"\0" * 32), MERCHANT
    )
    activity.send(escrow.authorizeReturn(item, PRICE, True), MERCHANT)
    activity.send(activity.record_batch_call([*base_items, item], 12), 3)
    activity.send(activity.record_batch_call(base_items, 5), 3)


def test_reorgs_of_depth_1_to_finality_while_following_leave_an_exact_index(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    base_items = chain.activity.register(3)
    store = Store.open(store_url)
    indexer = make_indexer_for(chain, store, finality=FINALITY)
    stop = threading.Event()
    updates: list[SyncUpdate] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            updates.extend(indexer.follow(stop=stop, poll_interval=0.02))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        for depth in range(1, FINALITY + 1):
            some_blocks(chain, base_items)
            wait_until_indexed(chain, store, errors)
            before = store.dump()
            replacement: list[list[Any]] = [[chain.activity.reorg_tx(base_items, 4 + depth), 0]]
            if depth > 1:
                replacement.append([chain.activity.reorg_tx(base_items[:1], 2), depth - 1])
            chain.node.rpc("anvil_reorg", [depth, replacement])
            wait_until_indexed(chain, store, errors)
            reorgs = [u for u in updates if isinstance(u, Reorg)]
            assert reorgs and reorgs[-1].depth == depth, reorgs
            after = store.dump()
            assert after == reference_dump(chain, finality=FINALITY), f"after a reorg of depth {depth}"
            assert after["item_events"] != before["item_events"] and after["checkpoint"] != before["checkpoint"]
            if depth >= 3:  # the return's authorization was in the replaced blocks
                assert len(after["returns"]) == len(before["returns"]) - 1
        # a shorter chain that then grows past the old head (anvil_rollback + new blocks)
        some_blocks(chain, base_items)
        wait_until_indexed(chain, store, errors)
        chain.node.rpc("anvil_rollback", [3])
        chain.activity.send(chain.activity.record_batch_call(base_items, 7), 3)
        mine(chain.node, 3)
        wait_until_indexed(chain, store, errors)
        assert [u for u in updates if isinstance(u, Reorg)][-1].depth == 3
        assert store.dump() == reference_dump(chain, finality=FINALITY)
    finally:
        stop.set()
        thread.join(timeout=30)
        indexer.rpc.close()
        store.close()
    assert not errors


def test_a_reorg_deeper_than_finality_stops_with_a_clear_error_and_a_consistent_index(
    chain: Chain, sqlite_url: str
) -> None:
    finality = 3
    chain.activity.lifecycle()
    base_items = chain.activity.register(2)
    for _ in range(3):
        some_blocks(chain, base_items)
    store = Store.open(sqlite_url)
    try:
        indexer = make_indexer_for(chain, store, finality=finality)
        run_sync(indexer)
        before = store.dump()
        head = chain.head
        chain.node.rpc("anvil_reorg", [finality + 2, [[chain.activity.reorg_tx(base_items, 3), 0]]])
        with pytest.raises(FatalError, match=rf"reorg deeper than finality {finality} at block {head - finality}"):
            run_sync(indexer)
        assert store.dump() == before  # untouched: still the old chain, consistent up to its checkpoint
        with pytest.raises(FatalError, match="reorg deeper than finality"):
            run_sync(indexer)  # and it stays stopped
        indexer.rpc.close()
    finally:
        store.close()
    result = run_cli(["backfill"], cli_env(chain, sqlite_url, LEDGER_FINALITY_DEPTH=str(finality)))
    assert result.returncode == 1
    assert f"reorg deeper than finality {finality}" in result.stderr
    assert "Traceback" not in result.stderr
    store = Store.open(sqlite_url)
    try:
        assert store.dump() == before
    finally:
        store.close()
