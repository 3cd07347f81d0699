"""Batched scans in an item's history, on a real anvil, into SQLite and PostgreSQL: each carries its batch, leaf
index, anchored root, anchor transaction and Merkle proof, which the contract itself accepts; the JSON and the
EPCIS 2.0 export carry the same; an index whose batched rows were altered, lost or reordered is named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from web3 import Web3

from ledger_service.chain.signers import connect_chain
from ledger_service.core.batch_document import LEAF_ENCODING, ChainHead
from ledger_service.core.codes import BizStep
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.store import Store
from ledger_service.store._db import write_transaction
from ledger_service.store.tables import batched_scans
from ledger_service.verification import AuditResult, audit_item
from ledger_service.verification.exports import history_epcis, history_json
from tests.ledger_service.batcher.conftest import batcher_settings
from tests.ledger_service.indexer.conftest import Chain, chain, make_indexer_for, run_sync
from tests.ledger_service.indexer.test_batches import _anchor, _id, _register, _resolver, _seal

__all__ = ["chain"]


def _typed(kind: str, value: str) -> object:
    if kind == "bytes32":
        return bytes.fromhex(value[2:])
    return Web3.to_checksum_address(value) if kind == "address" else int(value)


def _on_chain(chain: Chain, values: list[str], root: str, proof: list[str]) -> bool:
    leaf = tuple(_typed(kind, value) for kind, value in zip(LEAF_ENCODING, values, strict=True))
    path = [bytes.fromhex(node[2:]) for node in proof]
    return bool(chain.deployed.anchor.functions.verifyScan(leaf, bytes.fromhex(root[2:]), path).call())


@pytest.fixture
def batched(chain: Chain, store_url: str, tmp_path: Path) -> Iterator[tuple[Store, list[str], Any]]:
    """Two items; batch A scans both, batch B scans the first again: indexed and applied."""
    items = [_register(chain) for _ in range(2)]
    documents = LocalDocumentStore(tmp_path / "documents")
    heads: dict[str, ChainHead] = {}
    _anchor(chain, _seal(chain, heads, items), store=documents)
    _anchor(chain, _seal(chain, heads, items[:1], step=BizStep.ARRIVING), store=documents)
    store = Store.open(store_url)
    indexer = make_indexer_for(chain, store)
    run_sync(indexer)
    indexer.rpc.close()
    assert _resolver(chain, store, documents).run().applied == 2
    context = connect_chain(batcher_settings(chain, store_url, tmp_path / "documents"))
    yield store, items, context
    store.close()


def _audit(store: Store, context: Any, item: str) -> AuditResult:
    result = audit_item(store=store, chain=context, documents=None, item_id=_id(item))
    assert result is not None
    return result


def test_each_batched_scan_carries_its_anchor_and_a_proof_the_contract_accepts(
    chain: Chain, batched: tuple[Store, list[str], Any]
) -> None:
    store, items, context = batched
    result = _audit(store, context, items[0])
    assert result.verdict.intact, result.verdict.findings
    logs = chain.deployed.anchor.events.BatchAnchored().get_logs(from_block=0)
    anchored = {f"{log['blockNumber']}-{log['logIndex']}": log for log in logs}

    body = history_json(result.history, result.verdict, checked_at=0)
    scans = body["batched_scans"]
    assert [(s["seq"], s["biz_step"]) for s in scans] == [(0, "departing"), (1, "arriving")]
    assert scans[1]["prev_hash"] == scans[0]["leaf"]
    for scan in scans:
        event = anchored[scan["batch_id"]]
        assert scan["root"] == "0x" + bytes(event["args"]["root"]).hex()
        assert scan["anchor_tx"] == "0x" + bytes(event["transactionHash"]).hex()
        assert scan["encoding"] == list(LEAF_ENCODING)
        assert scan["batch_document_cid"].startswith("Qm")
        assert _on_chain(chain, scan["values"], scan["root"], scan["proof"])
    assert len(scans[0]["proof"]) == 1 and scans[0]["leaf_index"] == 0  # batch A holds two leaves
    assert scans[1]["proof"] == []  # batch B holds one: its leaf is its root

    # the EPCIS export carries the same proof in its ledger:batch extension, verifiable as it stands
    document = history_epcis(result.history, result.verdict, created_at=0)
    extensions = [e["ledger:batch"] for e in document["epcisBody"]["eventList"] if "ledger:batch" in e]
    assert [x["seq"] for x in extensions] == [0, 1]
    for extension in extensions:
        assert extension["leafEncoding"] == list(LEAF_ENCODING)
        assert _on_chain(chain, extension["leafValues"], extension["root"], extension["proof"])
    forged = list(extensions[0]["leafValues"])
    forged[8] = str(int(forged[8]) + 1)  # another time
    assert not _on_chain(chain, forged, extensions[0]["root"], extensions[0]["proof"])


def _kinds(result: AuditResult) -> list[str]:
    return [f.kind for f in result.verdict.findings]


def test_altered_lost_and_reordered_batched_rows_are_named(batched: tuple[Store, list[str], Any]) -> None:
    store, items, context = batched
    first, second = _id(items[0]), _id(items[1])
    bs = batched_scans.c
    with write_transaction(store.engine) as conn:
        conn.execute(update(batched_scans).where(bs.item_id == first, bs.seq == 1).values(read_point="0614141.99.0"))
    result = _audit(store, context, items[0])
    assert _kinds(result) == ["batched-scan-altered"]
    assert not result.verdict.intact
    assert "batched scan #1" in result.verdict.findings[0].message

    # the other item's leaf in batch A goes missing: the first item's proof no longer reaches the root
    with write_transaction(store.engine) as conn:
        conn.execute(delete(batched_scans).where(bs.item_id == second))
    assert "batched-proof-invalid" in _kinds(_audit(store, context, items[0]))

    # the first item's scans swap places in its chain
    with write_transaction(store.engine) as conn:
        conn.execute(update(batched_scans).where(bs.item_id == first, bs.seq == 0).values(seq=7))
    assert "batched-chain-broken" in _kinds(_audit(store, context, items[0]))
