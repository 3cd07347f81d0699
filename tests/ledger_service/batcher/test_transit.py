"""ledger-batcher proving a return's first carrier scan from a final batch (``markInTransitByProof``) on a real
anvil, into SQLite and PostgreSQL: a carrier that only batches moves the return to in transit and its fast refund
is paid once; scans that name no return, another item's return or a return already on its way send nothing; a
restart after the proofs and before the final mark sends nothing twice; a proof a reorg dropped after its batch
was final is sent again and pays once; the index and ``ledger-verify`` take the resulting history as any other."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from ledger_service.batcher.transit import may_prove
from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.independent_verifier._rpc import Rpc
from ledger_service.independent_verifier.check import verify
from ledger_service.store import Store
from ledger_service.store.returns import return_by_id
from ledger_service.store.scan_queue import QueuedScan, batches_in, enqueue_scans
from ledger_service.store.tables import BATCH_ANCHORED, BATCH_FINAL
from tests.ledger_service.batcher.conftest import ZERO, make_batcher
from tests.ledger_service.batcher.test_worker import _index
from tests.ledger_service.indexer.conftest import Chain
from tests.ledger_service.indexer.test_batches import _register
from tests.support.activity import LOCATION, PRICE
from tests.support.chain import CARRIER, CONSUMER, MERCHANT

FEE_BPS = 1000  # tests/support/activity.py's POLICY


def _sold_and_authorized(chain: Chain, *, fast: bool) -> tuple[str, bytes]:
    """A new item sold to CONSUMER with a return authorized: (its URI, the return id)."""
    uri = _register(chain)
    item = Web3.keccak(text=uri)
    escrow, accounts = chain.deployed.escrow.functions, chain.deployed.accounts
    if escrow.currentPolicyVersion(accounts[MERCHANT]).call() == 0:
        chain.activity.publish_policy()
    sale = escrow.recordSale(item, accounts[CONSUMER], chain.deployed.token.address, PRICE, b"\x33" * 32, LOCATION)
    chain.activity.send(sale, MERCHANT)
    return uri, chain.activity._authorize(item, fast_refund=fast)


def _scan(chain: Chain, uri: str, step: BizStep, return_id: bytes | None) -> QueuedScan:
    """A carrier's in-transit scan dated at the chain's head (after the authorizations), naming ``return_id``."""
    return QueuedScan(
        item=uri,
        biz_step=int(step),
        disposition=int(Disposition.IN_TRANSIT),
        read_point="0614141.00999.0",
        time=int(chain.deployed.w3.eth.get_block("latest")["timestamp"]),
        document=ZERO,
        biz_transaction=ZERO if return_id is None else "0x" + return_id.hex(),
    )


def _state(chain: Chain, return_id: bytes) -> ReturnState:
    return ReturnState(chain.deployed.escrow.functions.returnOf(return_id).call()[6])


def _settlements(chain: Chain, return_id: bytes) -> list[int]:
    logs = chain.deployed.escrow.events.EscrowSettled().get_logs(from_block=0)
    return [log["args"]["consumerAmount"] for log in logs if log["args"]["returnId"] == return_id]


def test_a_batched_in_transit_scan_naming_an_authorized_return_moves_it_and_pays_the_fast_refund_once(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    fast_uri, fast = _sold_and_authorized(chain, fast=True)
    slow_uri, slow = _sold_and_authorized(chain, fast=False)
    stranger_uri = _register(chain)
    token, consumer = chain.deployed.token.functions, chain.deployed.accounts[CONSUMER]
    balance = token.balanceOf(consumer).call()
    scans = [
        _scan(chain, fast_uri, BizStep.DEPARTING, fast),
        _scan(chain, stranger_uri, BizStep.TRANSPORTING, None),
        _scan(chain, slow_uri, BizStep.TRANSPORTING, slow),
        _scan(chain, stranger_uri, BizStep.DEPARTING, fast),  # another item's scan naming the return
        _scan(chain, fast_uri, BizStep.ARRIVING, fast),  # the same parcel at a hub: the return is moving already
    ]
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        at = scans[0].time * 1000
        enqueue_scans(store, submitter=chain.deployed.accounts[CARRIER], key_id=1, scans=scans, max_scans=10, now_ms=at)
        batcher = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        stats = batcher.turn()
        assert (stats.anchored, stats.proved) == (1, 0)
        assert _state(chain, fast) == ReturnState.AUTHORIZED  # nothing before the anchor is final

        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        stats = batcher.turn()
        assert (stats.final, stats.proved) == (0, 2)  # final once the proofs are as deep as the anchor
        assert (_state(chain, fast), _state(chain, slow)) == (ReturnState.IN_TRANSIT, ReturnState.IN_TRANSIT)
        refund = PRICE - PRICE * FEE_BPS // 10_000
        assert _settlements(chain, fast) == [refund] and _settlements(chain, slow) == []
        assert token.balanceOf(consumer).call() == balance + refund
        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        stats = batcher.turn()
        assert (stats.final, stats.proved) == (1, 0)

        # the index follows: both returns in transit, the state change in the carrier's name with the root
        _index(chain, store, documents)
        (batch,) = batches_in(store, BATCH_FINAL)
        for return_id in (fast, slow):
            row = return_by_id(store, "0x" + return_id.hex())
            assert row is not None and row.state is ReturnState.IN_TRANSIT
        changes = chain.deployed.escrow.events.ReturnStateChanged().get_logs(from_block=0)
        moved = next(c["args"] for c in changes if c["args"]["returnId"] == fast and c["args"]["state"] == 4)
        assert moved["actor"] == chain.deployed.accounts[CARRIER]
        assert "0x" + bytes(moved["evidence"]).hex() == batch.root

    # an auditor's replay of the item's chain holds the proved scan as any other event
    with Rpc(chain.node.url) as rpc:
        report = verify(rpc, ledger=chain.deployed.ledger.address, item=fast_uri)
    assert report.verified, report.problems
    last = report.events[-1].link
    assert (last.biz_step, last.disposition, last.actor) == (
        BizStep.DEPARTING,
        Disposition.IN_TRANSIT,
        chain.deployed.accounts[CARRIER],
    )


def test_a_restart_between_the_proofs_and_the_final_mark_sends_nothing_twice(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    uri, fast = _sold_and_authorized(chain, fast=True)
    documents = tmp_path / "documents"
    with Store.open(store_url) as store:
        scan = _scan(chain, uri, BizStep.DEPARTING, fast)
        carrier = chain.deployed.accounts[CARRIER]
        enqueue_scans(store, submitter=carrier, key_id=1, scans=[scan], max_scans=10, now_ms=scan.time * 1000)
        crashed = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        crashed.turn()
        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        (batch,) = batches_in(store, BATCH_ANCHORED)
        assert batch.document is not None
        # the crashed batcher sent the proof and died before marking the batch final
        assert crashed.transit is not None
        head = chain.deployed.w3.eth.block_number
        proved = crashed.transit.prove(
            batch_id=batch.id, document=batch.document, scan_count=batch.scan_count, head=head
        )
        assert proved.accepted == 1
        restarted = make_batcher(chain, store, store_url, documents, batch_seal_s=0.001)
        stats = restarted.turn()
        # it cannot know when the proof went out: it watches the batch for the finality depth from now
        assert (stats.final, stats.proved) == (0, 0)
        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        stats = restarted.turn()
        assert (stats.final, stats.proved) == (1, 0)
    assert len(_settlements(chain, fast)) == 1


def test_a_proof_a_reorg_dropped_after_its_batch_was_final_is_sent_again_and_pays_once(
    chain: Chain, store_url: str, tmp_path: Path
) -> None:
    uri, fast = _sold_and_authorized(chain, fast=True)
    token, consumer = chain.deployed.token.functions, chain.deployed.accounts[CONSUMER]
    balance = token.balanceOf(consumer).call()
    refund = PRICE - PRICE * FEE_BPS // 10_000
    w3 = chain.deployed.w3
    with Store.open(store_url) as store:
        scans = [_scan(chain, uri, BizStep.DEPARTING, fast), _scan(chain, uri, BizStep.ARRIVING, fast)]
        carrier = chain.deployed.accounts[CARRIER]
        enqueue_scans(store, submitter=carrier, key_id=1, scans=scans, max_scans=10, now_ms=scans[0].time * 1000)
        batcher = make_batcher(chain, store, store_url, tmp_path, batch_seal_s=0.001)
        assert batcher.turn().anchored == 1
        w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        assert batcher.turn().proved == 1
        assert _state(chain, fast) == ReturnState.IN_TRANSIT and _settlements(chain, fast) == [refund]

        # a reorg replaces the proof's block (the anchor, 13 blocks deeper, stays): the return is Authorized again
        w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
        assert _state(chain, fast) == ReturnState.AUTHORIZED and _settlements(chain, fast) == []
        assert token.balanceOf(consumer).call() == balance
        (watched,) = batches_in(store, BATCH_ANCHORED)

        stats = batcher.turn()
        assert (stats.proved, stats.reproved, stats.final) == (1, 1, 0)
        assert _state(chain, fast) == ReturnState.IN_TRANSIT and _settlements(chain, fast) == [refund]
        assert batcher.turn().proved == 0  # proved once: the scan at the hub sends nothing
        w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        stats = batcher.turn()
        assert (stats.proved, stats.final) == (0, 1)
        assert [b.id for b in batches_in(store, BATCH_FINAL)] == [watched.id]
    assert _settlements(chain, fast) == [refund]
    assert token.balanceOf(consumer).call() == balance + refund


def test_switched_off_the_batcher_proves_nothing(chain: Chain, store_url: str, tmp_path: Path) -> None:
    uri, fast = _sold_and_authorized(chain, fast=True)
    with Store.open(store_url) as store:
        scan = _scan(chain, uri, BizStep.DEPARTING, fast)
        carrier = chain.deployed.accounts[CARRIER]
        enqueue_scans(store, submitter=carrier, key_id=1, scans=[scan], max_scans=10, now_ms=scan.time * 1000)
        batcher = make_batcher(chain, store, store_url, tmp_path, batch_seal_s=0.001, batch_transit_proofs=False)
        batcher.turn()
        chain.deployed.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]
        assert batcher.turn().final == 1
    assert _state(chain, fast) == ReturnState.AUTHORIZED


def test_the_quick_filter_passes_every_document_naming_a_business_transaction() -> None:
    zero = b'"bizTransaction":"0x' + b"0" * 64 + b'"'
    named = b'"bizTransaction":"0x' + b"ab" * 32 + b'"'
    assert not may_prove(zero * 3, 3)
    assert may_prove(zero * 2 + named, 3)
