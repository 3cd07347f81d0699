"""Reorgs made by anvil_reorg / anvil_rollback while the indexer follows the chain.

After each reorg the index must equal a fresh full re-index of the canonical
chain (every table's rows, not counts); a reorg deeper than finality stops the
indexer with a clear error and leaves the index as it was.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger_service.errors import FatalError
from ledger_service.indexer.sync import Reorg, SyncUpdate
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import (
    Chain,
    cli_env,
    comparable,
    make_indexer_for,
    reference_dump,
    run_cli,
    run_sync,
    start_cli,
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


class Follower:
    """``Indexer.follow`` on a thread, restartable: a restart is a new indexer and a new store on the same
    database, as a new process would have."""

    def __init__(self, chain: Chain, store_url: str, *, finality: int) -> None:
        self.chain, self.store_url, self.finality = chain, store_url, finality
        self.updates: list[SyncUpdate] = []
        self.errors: list[BaseException] = []
        self._start()

    def _start(self) -> None:
        self.store = Store.open(self.store_url)
        self.indexer = make_indexer_for(self.chain, self.store, finality=self.finality)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow)
        self.thread.start()

    def _follow(self) -> None:
        try:
            self.updates.extend(self.indexer.follow(stop=self.stop, poll_interval=0.02))
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.indexer.rpc.close()
        self.store.close()

    def restart(self) -> None:
        self.close()
        self._start()

    def caught_up(self) -> None:
        wait_until_indexed(self.chain, self.store, self.errors)

    def last_reorg(self) -> Reorg:
        reorgs = [u for u in self.updates if isinstance(u, Reorg)]
        assert reorgs, "no reorg seen"
        return reorgs[-1]


def test_after_a_rollback_to_a_shorter_chain_reorgs_of_every_depth_up_to_finality_are_followed(
    chain: Chain, store_url: str
) -> None:
    """The chain shrinks (finality blocks mined, all but one rolled back, one mined again), then a replacement
    reorg of each depth up to finality: the follower (and a restarted one) never stops, because it keeps
    finality headers below its checkpoint whatever the chain did, and the index equals a clean backfill."""
    chain.activity.lifecycle()
    base_items = chain.activity.register(3)
    follower = Follower(chain, store_url, finality=FINALITY)
    try:
        follower.caught_up()
        for depth in range(1, FINALITY + 1):
            some_blocks(chain, base_items)  # FINALITY blocks
            follower.caught_up()
            chain.node.rpc("anvil_rollback", [FINALITY - 1])
            chain.activity.send(chain.activity.record_batch_call(base_items, depth), 3)
            follower.caught_up()
            assert follower.last_reorg().depth == FINALITY - 1
            assert follower.store.dump() == reference_dump(chain, finality=FINALITY), "after the rollback"
            if depth % 2 == 0:
                follower.restart()
            reorgs = len([u for u in follower.updates if isinstance(u, Reorg)])
            replacement: list[list[Any]] = [[chain.activity.reorg_tx(base_items, 2 + depth), 0]]
            chain.node.rpc("anvil_reorg", [depth, replacement])
            follower.caught_up()
            assert len([u for u in follower.updates if isinstance(u, Reorg)]) == reorgs + 1
            assert follower.last_reorg().depth == depth
            assert follower.store.dump() == reference_dump(chain, finality=FINALITY), f"after a reorg of {depth}"
    finally:
        follower.close()
    assert not follower.errors


def test_an_index_that_lost_headers_below_its_checkpoint_gets_them_back_from_the_node(
    chain: Chain, sqlite_url: str
) -> None:
    """An index written by a version that pruned headers against an older, higher head (or killed between
    passes) lacks headers within finality of its checkpoint: the next run fetches them from the node, checked
    against the ones it kept, and then follows a reorg of the full finality depth."""
    chain.activity.lifecycle()
    base_items = chain.activity.register(2)
    some_blocks(chain, base_items)
    store = Store.open(sqlite_url)
    try:
        indexer = make_indexer_for(chain, store, finality=FINALITY)
        run_sync(indexer)
        indexer.rpc.close()
        head = chain.head
        with store.engine.begin() as conn:  # keep only the checkpoint's header and the one below it
            conn.exec_driver_sql("DELETE FROM blocks WHERE number < ?", (head - 1,))
        assert sorted(store.stored_blocks(from_block=0, to_block=head)) == [head - 1, head]
        indexer = make_indexer_for(chain, store, finality=FINALITY)
        assert run_sync(indexer) == []  # nothing new to index, and the headers are back
        assert sorted(store.stored_blocks(from_block=0, to_block=head)) == list(range(head - FINALITY, head + 1))
        chain.node.rpc("anvil_reorg", [FINALITY, [[chain.activity.reorg_tx(base_items, 5), 0]]])
        updates = run_sync(indexer)
        indexer.rpc.close()
        assert [u.depth for u in updates if isinstance(u, Reorg)] == [FINALITY]
        assert store.dump() == reference_dump(chain, finality=FINALITY)
    finally:
        store.close()


def test_the_cli_follower_survives_the_issues_shape_of_a_shorter_chain_then_a_reorg_and_a_restart(
    chain: Chain, sqlite_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """The ledger-indexer follow process with the default finality 12: 8 blocks mined, 7 rolled back, one mined
    again, then a reorg of depth 7; SIGTERM and a new process, then a reorg of the full depth 12."""
    chain.activity.lifecycle()
    items = chain.activity.register(2)
    env = cli_env(chain, sqlite_url)
    log = tmp_path / "follow.log"

    def follower() -> subprocess.Popen[str]:
        proc = start_cli(["follow", "--poll-interval", "0.05"], env, log=log)
        procs.append(proc)
        return proc

    def indexed(proc: subprocess.Popen[str], store: Store) -> None:
        head = chain.deployed.w3.eth.get_block("latest")
        want = (head["number"], "0x" + bytes(head["hash"]).hex())
        deadline = time.monotonic() + 60
        while (c := store.checkpoint()) is None or (c.number, c.hash) != want:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not indexed: {want}, checkpoint {c}"
            time.sleep(0.05)
        # the headers kept are compared at the end: first, that the follower lives through every step
        assert comparable(store.dump()) == comparable(reference_dump(chain))

    proc = follower()
    with Store.open(sqlite_url) as store:
        indexed(proc, store)
        for n in range(8):
            chain.activity.send(chain.activity.record_batch_call(items, 1 + n), 3)
        indexed(proc, store)
        chain.node.rpc("anvil_rollback", [7])
        chain.activity.send(chain.activity.record_batch_call(items, 9), 3)
        indexed(proc, store)
        chain.node.rpc("anvil_reorg", [7, [[chain.activity.reorg_tx(items, 4), 0]]])
        indexed(proc, store)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
        chain.node.rpc("anvil_reorg", [12, [[chain.activity.reorg_tx(items, 6), 0]]])
        proc = follower()
        indexed(proc, store)
        assert store.dump() == reference_dump(chain)  # the headers too
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()
