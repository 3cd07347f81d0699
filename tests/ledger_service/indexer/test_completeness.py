"""A node that leaves logs out of its eth_getLogs answers: seen, fetched again, and never stored as holes.

The lying node is :class:`FaultProxy` with ``omit`` in front of a real anvil; the honest one is the anvil itself
(the second RPC URL where a test gives one). Each test compares the index with a clean re-index of the chain.
"""

from __future__ import annotations

import re
import tempfile
from typing import Any

import pytest

from ledger_service.errors import FatalError
from ledger_service.indexer.completeness import (
    BlockGoneError,
    BloomCheck,
    Expected,
    IncompleteLogsError,
    bloom_bits,
    receipts_root,
    reconcile,
)
from ledger_service.indexer.decode import topic0
from ledger_service.indexer.rpc import RetryPolicy, RpcClient
from ledger_service.store.handle import Store
from tests.ledger_service.indexer.conftest import (
    Chain,
    cli_env,
    make_indexer_for,
    reference_dump,
    run_cli,
    run_sync,
)
from tests.support.chain import start_anvil
from tests.support.faultproxy import FaultProxy, drop_last_matching, topic0_is

ROLE_REVOKED = topic0("RoleRevoked(bytes32,address,address)")
ITEM_EVENT = topic0(
    "ItemEventRecorded(bytes32,address,uint64,uint8,uint8,bytes32,bytes32,bytes32,uint64,bytes32,bytes32)"
)


def _client(url: str) -> RpcClient:
    return RpcClient(url, retry=RetryPolicy(attempts=4, base_delay=0.02))


def _drop_first_item_event(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leaves out the answer's first ItemEventRecorded: the events of its item after it are still there (a gap)."""
    for index, log in enumerate(logs):
        if topic0_is(ITEM_EVENT)(log):
            return logs[:index] + logs[index + 1 :]
    return logs


def _dump_upto(chain: Chain, block: int) -> dict[str, list[tuple[Any, ...]]]:
    """A clean index of the chain up to ``block``, without the stored headers (their window depends on the head)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/reference.sqlite3")
        try:
            indexer = make_indexer_for(chain, store)
            run_sync(indexer, target=block)
            return {table: rows for table, rows in store.dump().items() if table != "blocks"}
        finally:
            indexer.rpc.close()
            store.close()


def _faults(store: Store) -> list[tuple[str, bool]]:
    return [(f.kind, f.repaired) for f in store.node_faults()]


# ---- the bloom check -------------------------------------------------------------------------


def test_bloom_bits_match_the_headers_of_anvil(chain: Chain) -> None:
    """Our bloom bits are the chain's: every block with a RoleRevoked of the ledger has them set."""
    chain.activity.lifecycle()
    probe = BloomCheck(addresses=[chain.deployed.ledger.address], topics={ROLE_REVOKED: "RoleRevoked"})
    logs = chain.node.rpc(
        "eth_getLogs", [{"address": chain.deployed.ledger.address, "fromBlock": "0x0", "topics": [ROLE_REVOKED]}]
    )
    assert logs
    for log in logs:
        block = chain.node.rpc("eth_getBlockByNumber", [log["blockNumber"], False])
        assert probe.addresses_maybe(block["logsBloom"])
        assert probe.unexplained(block["logsBloom"], set()) == ["RoleRevoked"]
        assert probe.unexplained(block["logsBloom"], {"RoleRevoked"}) == []
    assert len(bloom_bits(b"\x00" * 20)) == 3


def test_a_dense_bloom_is_not_taken_for_a_missing_log() -> None:
    """A bloom that says "maybe" to most things (a block with many logs) triggers no re-fetch: past SPARSE, a
    kind missing next to our other logs is not looked for; past DENSE, not even a block with none of ours."""
    address = "0x" + "11" * 20
    probe = BloomCheck(addresses=[address], topics={ROLE_REVOKED: "RoleRevoked", ITEM_EVENT: "ItemEventRecorded"})
    sparse = bytearray(256)
    for element in (bytes.fromhex(address[2:]), bytes.fromhex(ROLE_REVOKED[2:])):
        for index, mask in bloom_bits(element):
            sparse[index] |= mask
    assert probe.unexplained("0x" + sparse.hex(), set()) == ["RoleRevoked"]
    assert probe.unexplained("0x" + sparse.hex(), {"ItemEventRecorded"}) == ["RoleRevoked"]
    fifth = bytes(b | 0b10001 if i % 2 else b | 0b1 for i, b in enumerate(sparse))  # ~19% of the bits set
    assert probe.unexplained("0x" + fifth.hex(), set()) == ["RoleRevoked"]
    assert probe.unexplained("0x" + fifth.hex(), {"ItemEventRecorded"}) == []
    full = "0x" + "ff" * 256
    assert probe.unexplained(full, set()) == [] and probe.addresses_maybe(full)


@pytest.mark.parametrize("process", [False, True], ids=["thread", "fetch-process"])
def test_a_left_out_role_revocation_is_seen_by_the_bloom_and_fetched_from_the_second_url(
    chain: Chain, store_url: str, process: bool
) -> None:
    """A non-item event (the only one of its block) that the node always leaves out: before, it vanished with
    no trace; now the block's logsBloom announces it, the second RPC URL has it, and the index is exact."""
    chain.activity.lifecycle()
    chain.activity.bulk(events=300, items=4)
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ROLE_REVOKED))) as liar:
            indexer = make_indexer_for(
                chain,
                store,
                rpc_url=liar.url,
                fallback_rpc=_client(chain.node.url),
                fetch_process_min_blocks=1 if process else None,
            )
            run_sync(indexer)
        assert liar.omitted, "the node did not lie"
        assert store.dump() == reference_dump(chain)
        faults = store.node_faults()
        assert [(f.kind, f.repaired) for f in faults] == [("bloom", True)]
        assert "RoleRevoked" in faults[0].detail and "second RPC URL" in faults[0].detail
        assert store.node_fault_counts() == (1, 1)
    finally:
        store.close()


def test_a_bloom_hit_no_answer_explains_is_recorded_as_unresolved(chain: Chain, store_url: str) -> None:
    """Every node asked leaves it out, no proof: the bloom cannot tell that from a false positive, so indexing
    goes on, loudly (a warning and an unrepaired node fault)."""
    chain.activity.lifecycle()
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ROLE_REVOKED))) as liar:
            run_sync(make_indexer_for(chain, store, rpc_url=liar.url))
        faults = store.node_faults()
        assert [(f.kind, f.repaired) for f in faults] == [("bloom", False)]
        assert "false positive" in faults[0].detail and "LEDGER_RECEIPTS_PROOF" in faults[0].detail
    finally:
        store.close()


# ---- reconciliation with itemOf, and hash-chain breaks -----------------------------------------------


def test_an_items_last_event_left_out_once_is_seen_by_reconciliation_and_fetched_again(
    chain: Chain, store_url: str
) -> None:
    """The last event of an answer is its item's last in the batch: no seq check sees it (no later event), the
    bloom neither (other ItemEventRecorded logs in its block); itemOf at the batch's block does."""
    items = chain.activity.register(3)
    chain.activity.send(chain.activity.record_batch_call(items, 30), 3)
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ITEM_EVENT)), omit_answers=1) as liar:
            run_sync(make_indexer_for(chain, store, rpc_url=liar.url))
        assert len(liar.omitted) == 1
        assert store.dump() == reference_dump(chain)
        faults = store.node_faults()
        assert [(f.kind, f.repaired) for f in faults] == [("reconcile", True)]
        dropped = liar.omitted[0]
        assert faults[0].item_id == dropped["topics"][1]
        assert "1 event(s) missing" in faults[0].detail
    finally:
        store.close()


@pytest.mark.parametrize(("window", "reconciled"), [(1000, True), (8, False)])
def test_only_batches_within_the_reconcile_window_below_the_head_are_reconciled(
    chain: Chain, store_url: str, window: int, reconciled: bool
) -> None:
    """A full node keeps recent state only: a batch ending more than ``reconcile_window`` blocks below the head is
    written with the bloom and hash-chain checks alone (the limit the README states); one within it is
    reconciled as at the head."""
    items = chain.activity.register(3)
    chain.activity.send(chain.activity.record_batch_call(items, 30), 3)
    chain.node.rpc("anvil_mine", ["0x40"])  # the events end 64 blocks below the head
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ITEM_EVENT)), omit_answers=1) as liar:
            # small ranges, one per batch: the batch holding the events ends far below the head
            indexer = make_indexer_for(
                chain,
                store,
                rpc_url=liar.url,
                initial_blocks=2,
                target_logs=10,
                max_batch_events=1,
                reconcile_window=window,
            )
            run_sync(indexer)
        assert len(liar.omitted) == 1
        faults = [(f.kind, f.repaired) for f in store.node_faults()]
        if reconciled:
            assert faults == [("reconcile", True)]
            assert store.dump() == reference_dump(chain)
        else:
            assert faults == []
            assert store.dump() != reference_dump(chain)  # the omission went unseen: what the window gives up
    finally:
        store.close()


def test_an_event_left_out_before_later_ones_is_one_break_fetched_again(chain: Chain, store_url: str) -> None:
    """Before, every later event of the item was flagged (hundreds of rows for one drop) and stayed so; now the
    break is found before anything is written, reported once, and the range fetched again fills the gap."""
    items = chain.activity.register(2)
    for _ in range(3):
        chain.activity.send(chain.activity.record_batch_call(items, 40), 3)
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=_drop_first_item_event, omit_answers=1) as liar:
            # the seq check alone (the bloom would see a registration's commissioning event left out)
            run_sync(make_indexer_for(chain, store, rpc_url=liar.url, reconcile=False, bloom_check=False))
        assert len(liar.omitted) == 1
        assert store.dump() == reference_dump(chain)
        assert store.dump()["chain_problems"] == []
        faults = store.node_faults()
        assert [(f.kind, f.repaired) for f in faults] == [("chain_break", True)]
        assert faults[0].item_id == liar.omitted[0]["topics"][1]
    finally:
        store.close()


def test_a_node_that_always_leaves_an_event_out_stops_the_indexer_without_a_hole(chain: Chain, store_url: str) -> None:
    """A discrepancy that stays after re-fetching stops the indexer with an error naming the blocks and the
    item; the index stays at the block before them, equal to a clean index up to there."""
    items = chain.activity.register(2)
    honest = chain.head
    chain.activity.send(chain.activity.record_batch_call(items, 20), 3)
    store = Store.open(store_url)
    try:
        drop = drop_last_matching(topic0_is(ITEM_EVENT))

        def omit(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:  # in the last block only
            return drop(logs) if any(int(log["blockNumber"], 16) > honest for log in logs) else logs

        with FaultProxy(chain.node.url, omit=omit) as liar:
            indexer = make_indexer_for(chain, store, rpc_url=liar.url, initial_blocks=1, max_batch_events=1)
            with pytest.raises(IncompleteLogsError) as caught:
                run_sync(indexer)
        message = str(caught.value)
        dropped = liar.omitted[-1]
        block = int(dropped["blockNumber"], 16)
        assert f"..{block}, item {dropped['topics'][1]}" in message
        assert "nothing of these blocks was indexed" in message
        # the index stops right before the range that held the omission (where it starts depends on how the
        # ranges grew over the deployment's blocks, not on the dropped block)
        found = re.search(r"blocks (\d+)\.\.(\d+)", message)
        assert found is not None and int(found[1]) <= honest + 1 and int(found[2]) >= block
        checkpoint = store.checkpoint()
        assert checkpoint is not None and checkpoint.number == int(found[1]) - 1 < block
        dump = {table: rows for table, rows in store.dump().items() if table != "blocks"}
        assert dump == _dump_upto(chain, checkpoint.number)
        assert _faults(store) == [("reconcile", False), ("reconcile", False)]
    finally:
        store.close()


def test_the_cli_exits_non_zero_and_status_counts_the_faults(chain: Chain, sqlite_url: str) -> None:
    items = chain.activity.register(2)
    chain.activity.send(chain.activity.record_batch_call(items, 20), 3)
    with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ITEM_EVENT))) as liar:
        env = cli_env(chain, sqlite_url, rpc_url=liar.url)
        backfill = run_cli(["backfill"], env)
        assert backfill.returncode == 1, backfill.stderr
        assert "incomplete logs" in backfill.stderr and "node_fault" in backfill.stderr
        status = run_cli(["status"], env)
    found = re.search(r"^node faults: (\d+) \(0 repaired\)", status.stdout, re.MULTILINE)
    assert found is not None and int(found.group(1)) >= 2, status.stdout  # the answer, and the one asked again
    # the same backfill against an honest node (the second URL) completes: nothing to repair, no hole
    with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ITEM_EVENT))) as liar:
        env = cli_env(chain, sqlite_url, rpc_url=liar.url, LEDGER_RPC_URLS=f"{liar.url},{chain.node.url}")
        backfill = run_cli(["backfill"], env)
        assert backfill.returncode == 0, backfill.stderr
    store = Store.open(sqlite_url)
    try:
        assert {t: r for t, r in store.dump().items() if t != "blocks"} == _dump_upto(chain, chain.head)
        total, repaired = store.node_fault_counts()
        assert total > int(found.group(1)) and repaired >= 1
    finally:
        store.close()


# ---- the receipts proof ---------------------------------------------------------------------------


def test_receipts_root_matches_the_headers_of_anvil(chain: Chain) -> None:
    chain.activity.lifecycle()
    for number in range(1, chain.head + 1):
        block = chain.node.rpc("eth_getBlockByNumber", [hex(number), False])
        receipts = chain.node.rpc("eth_getBlockReceipts", [hex(number)])
        assert receipts_root(receipts) == block["receiptsRoot"], number


def test_the_receipts_proof_sees_what_the_bloom_and_reconciliation_cannot(chain: Chain, store_url: str) -> None:
    """A seller change left out next to another seller change of its block: no bloom, no itemOf sees it; the
    block's receipts, proven against its receiptsRoot, do."""
    ledger = chain.deployed.ledger.functions
    accounts = chain.deployed.accounts
    seller_set = topic0("SellerSet(address,address,bool)")
    chain.activity.lifecycle()
    chain.node.rpc("evm_setAutomine", [False])
    try:
        for n in (5, 6):
            ledger.setSeller(accounts[n], True).transact({"from": accounts[2], "gas": 200_000})
        chain.node.rpc("anvil_mine", ["0x1"])
    finally:
        chain.node.rpc("evm_setAutomine", [True])
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(seller_set)), omit_answers=1) as liar:
            # one answer for the whole chain: the omitted log is the two-seller block's, not a lone one of lifecycle
            run_sync(make_indexer_for(chain, store, rpc_url=liar.url, receipts_proof=True, initial_blocks=4096))
        assert len(liar.omitted) == 1
        assert store.dump() == reference_dump(chain)
        assert _faults(store) == [("proof", True)]
    finally:
        store.close()


def test_with_the_proof_a_node_that_always_leaves_a_log_out_stops_the_indexer(chain: Chain, store_url: str) -> None:
    chain.activity.lifecycle()
    store = Store.open(store_url)
    try:
        with FaultProxy(chain.node.url, omit=drop_last_matching(topic0_is(ROLE_REVOKED))) as liar:
            indexer = make_indexer_for(chain, store, rpc_url=liar.url, receipts_proof=True, bloom_check=False)
            with pytest.raises(IncompleteLogsError) as caught:
                run_sync(indexer)
        block = int(liar.omitted[-1]["blockNumber"], 16)
        assert f"of block {block}" in str(caught.value) and "receiptsRoot" in str(caught.value)
        checkpoint = store.checkpoint()
        assert checkpoint is None or checkpoint.number < block
        assert ("proof", False) in _faults(store)
    finally:
        store.close()


def test_an_index_with_a_stored_gap_is_repaired_by_the_next_run_against_an_honest_node(
    chain: Chain, store_url: str
) -> None:
    """An index written as before (a left-out event stored as a seq gap, the later ones kept): the next run
    against an honest node fetches those blocks again, and the index equals a clean one (before, nothing was
    repaired)."""
    items = chain.activity.register(2)
    for _ in range(3):
        chain.activity.send(chain.activity.record_batch_call(items, 40), 3)
    store = Store.open(store_url)
    try:

        def apply_as_before(**kwargs: Any) -> Any:  # the indexer before it refused breaks
            return Store.apply(store, **{**kwargs, "refuse_breaks": False})

        with FaultProxy(chain.node.url, omit=_drop_first_item_event, omit_answers=1) as liar:
            lying = make_indexer_for(chain, store, rpc_url=liar.url, reconcile=False, bloom_check=False)
            lying.store.apply = apply_as_before  # type: ignore[method-assign]
            run_sync(lying)
        assert len(store.dump()["chain_problems"]) == 1  # the hole, stored
        del store.apply
        run_sync(make_indexer_for(chain, store))
        assert store.dump() == reference_dump(chain)
        assert store.dump()["chain_problems"] == []
    finally:
        store.close()


def test_reconciling_at_a_block_reorged_away_asks_for_the_range_again(chain: Chain) -> None:
    """A reorg between the fetch and the itemOf batch is the chain moving (fetch again), not a lying node."""
    items = chain.activity.register(1)
    block = chain.deployed.w3.eth.get_block("latest")
    expected = {"0x" + bytes(items[0]).hex(): Expected(count=1, head=None)}
    with _client(chain.node.url) as rpc:
        here = reconcile(
            rpc,
            ledger=chain.deployment.address_of("ProvenanceLedger"),
            block_hash="0x" + bytes(block["hash"]).hex(),
            block_number=block["number"],
            expected=expected,
        )
        assert here is not None and len(here) == 1 and "the contract counts 1 events" in here[0].detail
        chain.node.rpc("anvil_reorg", [1, []])
        with pytest.raises(BlockGoneError):
            reconcile(
                rpc,
                ledger=chain.deployment.address_of("ProvenanceLedger"),
                block_hash="0x" + bytes(block["hash"]).hex(),
                block_number=block["number"],
                expected=expected,
            )


def test_a_second_url_on_another_chain_is_refused_before_anything_is_indexed(chain: Chain, store_url: str) -> None:
    """Its answers would replace the first node's: it must serve the pinned chain too."""
    chain.activity.lifecycle()
    other = start_anvil("--chain-id", "31338")
    store = Store.open(store_url)
    try:
        indexer = make_indexer_for(chain, store, fallback_rpc=_client(other.url))
        with pytest.raises(FatalError, match=rf"wrong chain: the node at {other.url} serves chain 31338 \(genesis"):
            run_sync(indexer)
        assert store.checkpoint() is None
    finally:
        store.close()
        other.stop()
