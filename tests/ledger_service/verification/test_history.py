"""verify_item against a real anvil and a real SQLite index: an untouched history is intact, and every kind
of tampering with the index rows, the blocks or the documents is named by the exact event or document."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest
from eth_typing import HexStr
from sqlalchemy import text
from web3 import Web3

from ledger_service.chain.signers import ChainContext
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.documents.cid import Cid
from ledger_service.documents.local import LocalDocumentStore
from ledger_service.errors import InvalidRequestError
from ledger_service.store.handle import Store
from ledger_service.verification import (
    Finding,
    ItemVerdict,
    Severity,
    VerificationUnavailableError,
    audit_item,
    item_history,
    verify_item,
)
from tests.ledger_service.verification.conftest import Audited, index_chain
from tests.support.activity import HUB, Activity, write_manifest
from tests.support.chain import CARRIER, MERCHANT, Anvil, deploy_all


def _sql(store: Store, statement: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _row(store: Store, item_id: str, seq: int) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM item_events WHERE item_id = :i AND seq = :s"), {"i": item_id, "s": seq})
            .mappings()
            .one()
        )
    return dict(row)


def _errors(verdict: ItemVerdict) -> list[Finding]:
    return [f for f in verdict.findings if f.severity is Severity.ERROR]


def _by_event(verdict: ItemVerdict) -> set[tuple[str, int | None]]:
    """(kind, seq) of every finding that names an event."""
    return {(f.kind, f.seq) for f in verdict.findings if f.seq is not None}


def _kinds(verdict: ItemVerdict) -> set[str]:
    return {f.kind for f in verdict.findings}


def _verify(audited: Audited, store: Store, documents: LocalDocumentStore | None = None, **kw: Any) -> ItemVerdict:
    verdict = verify_item(
        store=store, chain=audited.chain, documents=documents, item_id=kw.pop("item_id", audited.subject), **kw
    )
    assert verdict is not None
    return verdict


def _item_of(audited: Audited, item_id: str, block: int | None = None) -> tuple[str, int]:
    record = audited.deployed.ledger.functions.itemOf(bytes.fromhex(item_id[2:])).call(
        block_identifier=block if block is not None else "latest"
    )
    return "0x" + bytes(record[0]).hex(), int(record[1])


# ---- untouched ------------------------------------------------------------------------------------


def test_an_untouched_history_is_intact_and_matches_the_contract(
    audited: Audited, index: Store, documents: LocalDocumentStore
) -> None:
    checkpoint = index.checkpoint()
    assert checkpoint is not None
    head, count = _item_of(audited, audited.subject, checkpoint.number)
    verdict = _verify(audited, index, documents)
    # The commissioning event cites the item's metadata document (digest 0x22..22), which nobody stored here.
    metadata = Cid.from_digest(b"\x22" * 32).v0
    assert [(f.kind, f.seq, f.cid, f.severity) for f in verdict.findings] == [
        ("document-missing", 0, metadata, Severity.WARNING)
    ]
    assert verdict.intact
    assert (verdict.index_count, verdict.chain_count) == (5, 5) == (count, count)
    assert verdict.index_head == verdict.chain_head == head
    assert verdict.blocks_checked == 5  # registration and each recordEvent in a block of its own
    assert verdict.documents_checked == 3  # seq 0's, and the one document seq 1 and seq 4 both cite


def test_the_history_has_every_field_with_roles_at_the_time(audited: Audited, index: Store) -> None:
    history = item_history(store=index, item_id=audited.subject.upper().replace("0X", "0x"))
    assert history is not None
    assert history.uri == audited.subject_uri
    assert [e.seq for e in history.events] == [0, 1, 2, 3, 4]
    steps = [(e.biz_step_name, e.disposition_name) for e in history.events]
    assert steps == [
        ("commissioning", "active"),
        ("packing", "active"),
        ("departing", "in_transit"),
        ("arriving", "in_transit"),
        ("inspecting", "conformant"),
    ]
    assert [e.actor_roles for e in history.events][1:] == [
        ("manufacturer",),
        ("carrier",),
        ("carrier",),
        ("inspector",),
    ]
    packing = history.events[1]
    assert packing.document_cid == Cid.from_digest(audited.document_digest)
    assert history.events[2].read_point == HUB.rstrip(b"\0").decode()
    for event in history.events:
        block = audited.deployed.w3.eth.get_block(event.block_number)
        assert event.block_hash == "0x" + bytes(block["hash"]).hex()
        receipt = audited.deployed.w3.eth.get_transaction_receipt(HexStr(event.tx_hash))
        assert receipt["blockNumber"] == event.block_number
    assert history.events[0].prev_hash == "0x" + "00" * 32
    assert all(b.prev_hash == a.event_hash for a, b in zip(history.events, history.events[1:], strict=False))


@pytest.mark.postgres
def test_a_postgresql_index_gives_the_same_history_and_verdict(audited: Audited, index: Store, pg_url: str) -> None:
    index_chain(audited.settings, pg_url)
    with Store.open(pg_url) as pg:
        for item_id in [audited.subject, *audited.lifecycle_items]:
            from_pg = audit_item(store=pg, chain=audited.chain, documents=None, item_id=item_id)
            from_sqlite = audit_item(store=index, chain=audited.chain, documents=None, item_id=item_id)
            assert from_pg is not None and from_sqlite is not None
            # the PostgreSQL index may be a few blocks further (other tests add blocks): compare what both hold
            count = from_sqlite.verdict.index_count
            assert from_pg.history.events[:count] == from_sqlite.history.events
            assert from_pg.history.registration == from_sqlite.history.registration
            assert from_pg.verdict.intact and not from_pg.verdict.findings, from_pg.verdict.findings


def test_every_item_of_the_returns_lifecycle_is_intact(audited: Audited, index: Store) -> None:
    for item_id in audited.lifecycle_items:
        verdict = _verify(audited, index, item_id=item_id)
        assert verdict.intact and not verdict.findings, (item_id, verdict.findings)
        assert verdict.index_count == verdict.chain_count


def test_an_item_nobody_knows_has_no_verdict(audited: Audited, index: Store) -> None:
    unknown = "0x" + secrets.token_hex(32)
    assert verify_item(store=index, chain=audited.chain, documents=None, item_id=unknown) is None
    assert item_history(store=index, item_id=unknown) is None


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 32, "ab" * 33, ""])
def test_a_malformed_item_id_is_a_request_error(audited: Audited, index: Store, bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="0x \\+ 64 hex digits"):
        verify_item(store=index, chain=audited.chain, documents=None, item_id=bad)


def test_an_index_behind_the_chain_is_checked_at_its_own_block(audited: Audited, index: Store) -> None:
    """Events the indexer has not reached yet are not 'missing': the contract is read at the index's block."""
    item = audited.lifecycle_items[0]
    Activity(audited.deployed).send(
        audited.deployed.ledger.functions.recordEvent(
            (bytes.fromhex(item[2:]), BizStep.TRANSPORTING, Disposition.IN_TRANSIT, HUB, b"\0" * 32, b"\0" * 32)
        ),
        CARRIER,
    )
    verdict = _verify(audited, index, item_id=item)
    assert verdict.intact and not verdict.findings, verdict.findings
    assert verdict.chain_count == _item_of(audited, item)[1] - 1


# ---- tampered rows --------------------------------------------------------------------------------


def test_a_deleted_row_is_named_by_its_seq(audited: Audited, index: Store) -> None:
    _sql(index, "DELETE FROM item_events WHERE item_id = :i AND seq = 2", i=audited.subject)
    verdict = _verify(audited, index)
    assert not verdict.intact
    assert _by_event(verdict) == {("event-missing", 2)}
    assert _kinds(verdict) == {"event-missing", "count-mismatch", "head-mismatch"}
    assert (verdict.index_count, verdict.chain_count) == (4, 5)
    assert "event #2 is missing" in next(f.message for f in verdict.findings if f.kind == "event-missing")


def test_a_deleted_last_row_is_named_too(audited: Audited, index: Store) -> None:
    _sql(index, "DELETE FROM item_events WHERE item_id = :i AND seq = 4", i=audited.subject)
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("event-missing", 4)}
    assert _kinds(verdict) == {"event-missing", "count-mismatch", "head-mismatch"}


def test_every_row_deleted_leaves_the_item_known_to_the_chain(audited: Audited, index: Store) -> None:
    for table in ("item_events", "item_registrations", "items"):
        _sql(index, f"DELETE FROM {table} WHERE item_id = :i", i=audited.subject)
    result = audit_item(store=index, chain=audited.chain, documents=None, item_id=audited.subject)
    assert result is not None
    assert result.history.events == ()
    assert _by_event(result.verdict) == {("event-missing", s) for s in range(5)}
    assert result.verdict.index_head is None and result.verdict.chain_count == 5


def test_a_row_the_chain_never_had_is_named(audited: Audited, index: Store) -> None:
    row = _row(index, audited.subject, 4)
    forged = row | {
        "seq": 5,
        "prev_hash": row["event_hash"],
        "event_hash": "0x" + secrets.token_hex(32),
        "log_index": row["log_index"] + 1000,  # a position of its own: the log's position keys the table
    }
    columns = ", ".join(forged)
    values = ", ".join(f":{name}" for name in forged)
    _sql(index, f"INSERT INTO item_events ({columns}) VALUES ({values})", **forged)
    verdict = _verify(audited, index, check_blocks=False)
    assert _by_event(verdict) == {("event-not-on-chain", 5)}
    assert _kinds(verdict) == {"event-not-on-chain", "count-mismatch", "head-mismatch"}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("disposition", int(Disposition.DAMAGED)),
        ("actor", "0x" + "ab" * 20),
        ("biz_step", int(BizStep.RECEIVING)),
        ("timestamp", 1),
        ("document", "0x" + "cd" * 32),
    ],
)
def test_an_altered_field_is_named_by_seq_and_transaction(
    audited: Audited, index: Store, column: str, value: object
) -> None:
    tx_hash = _row(index, audited.subject, 3)["tx_hash"]
    _sql(index, f"UPDATE item_events SET {column} = :v WHERE item_id = :i AND seq = 3", v=value, i=audited.subject)
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("event-altered", 3)}
    assert _kinds(verdict) == {"event-altered", "head-mismatch"}
    altered = next(f for f in verdict.findings if f.kind == "event-altered")
    assert tx_hash in altered.message and "event #3" in altered.message


def test_a_row_that_cannot_even_be_hashed_is_altered_not_a_crash(audited: Audited, index: Store) -> None:
    _sql(index, "UPDATE item_events SET location = 'garbage' WHERE item_id = :i AND seq = 2", i=audited.subject)
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("event-altered", 2)}


def test_an_altered_stored_hash_is_named_once_not_as_a_cascade(audited: Audited, index: Store) -> None:
    _sql(
        index,
        "UPDATE item_events SET event_hash = :h WHERE item_id = :i AND seq = 2",
        h="0x" + secrets.token_hex(32),
        i=audited.subject,
    )
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("event-altered", 2)}


def test_a_forged_but_self_consistent_row_breaks_the_link(audited: Audited, index: Store) -> None:
    """Row 2 rewritten with a new prevHash and a matching eventHash: its own hash checks, its links do not."""
    from ledger_service.core.hashchain import event_hash

    row = _row(index, audited.subject, 2)
    fake_prev = secrets.token_bytes(32)
    forged = event_hash(
        prev_hash=fake_prev,
        item_id=bytes.fromhex(audited.subject[2:]),
        seq=2,
        biz_step=row["biz_step"],
        disposition=row["disposition"],
        actor=row["actor"],
        location=bytes.fromhex(row["location"][2:]),
        document=bytes.fromhex(row["document"][2:]),
        biz_transaction=bytes.fromhex(row["biz_transaction"][2:]),
        timestamp=row["timestamp"],
    )
    _sql(
        index,
        "UPDATE item_events SET prev_hash = :p, event_hash = :h WHERE item_id = :i AND seq = 2",
        p="0x" + fake_prev.hex(),
        h="0x" + forged.hex(),
        i=audited.subject,
    )
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("hash-chain-broken", 2), ("hash-chain-broken", 3)}
    assert verdict.index_head == verdict.chain_head  # recomputed from the fields alone, which are genuine


def test_swapped_seq_numbers_are_named_as_reordered(audited: Audited, index: Store) -> None:
    _sql(index, "UPDATE item_events SET seq = -1 WHERE item_id = :i AND seq = 1", i=audited.subject)
    _sql(index, "UPDATE item_events SET seq = 1 WHERE item_id = :i AND seq = 3", i=audited.subject)
    _sql(index, "UPDATE item_events SET seq = 3 WHERE item_id = :i AND seq = -1", i=audited.subject)
    verdict = _verify(audited, index)
    assert _by_event(verdict) == {("event-reordered", 1), ("event-reordered", 3)}
    messages = {f.seq: f.message for f in verdict.findings if f.kind == "event-reordered"}
    assert "is event #3 of the chain" in messages[1]
    assert "is event #1 of the chain" in messages[3]


def test_a_row_moved_in_chain_order_is_named(audited: Audited, index: Store) -> None:
    """Its fields still hash, but its block and log index put it after a later event."""
    later = _row(index, audited.subject, 4)
    _sql(
        index,
        "UPDATE item_events SET block_number = :b, log_index = :l WHERE item_id = :i AND seq = 1",
        b=later["block_number"],
        l=later["log_index"] + 1,
        i=audited.subject,
    )
    verdict = _verify(audited, index, check_blocks=False)
    assert _by_event(verdict) == {("event-reordered", 1)}
    assert verdict.index_head == verdict.chain_head  # the hashed fields are untouched


# ---- blocks -----------------------------------------------------------------------------------------


def test_a_stored_block_hash_that_is_not_canonical_is_named(audited: Audited, index: Store) -> None:
    _sql(
        index,
        "UPDATE item_events SET block_hash = :h WHERE item_id = :i AND seq = 3",
        h="0x" + secrets.token_hex(32),
        i=audited.subject,
    )
    verdict = _verify(audited, index)
    assert [(f.kind, f.seq) for f in verdict.findings] == [("block-not-canonical", 3)]
    assert not verdict.intact
    assert _verify(audited, index, check_blocks=False).intact  # the hash chain itself is untouched


def test_a_row_without_block_hash_is_a_warning(audited: Audited, index: Store) -> None:
    _sql(index, "UPDATE item_events SET block_hash = NULL WHERE item_id = :i AND seq = 0", i=audited.subject)
    verdict = _verify(audited, index)
    assert [(f.kind, f.seq, f.severity) for f in verdict.findings] == [("block-unchecked", 0, Severity.WARNING)]
    assert verdict.intact and verdict.blocks_checked == 4


def test_an_index_left_behind_by_a_reorg_is_not_canonical(fresh_anvil: Anvil, tmp_path: Path) -> None:
    """The index saw two blocks that a reorg then replaced: their events are named, with the count."""
    from ledger_service.chain.signers import connect_chain
    from ledger_service.settings import Settings
    from tests.support.chain import ARTIFACTS

    deployed = deploy_all(fresh_anvil)
    activity = Activity(deployed)
    (item,) = activity.register(1, merchant=MERCHANT)
    for _ in range(3):
        activity.send(
            deployed.ledger.functions.recordEvent(
                (item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT, HUB, b"\0" * 32, b"\0" * 32)
            ),
            CARRIER,
        )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=fresh_anvil.url,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        deployment_file=write_manifest(deployed, tmp_path / "deployments" / "31337.json"),
        artifacts_dir=ARTIFACTS,
        documents_dir=tmp_path / "documents",
    )
    index_chain(settings, settings.database_url)
    fresh_anvil.rpc("anvil_reorg", [2, []])  # the last two blocks (seq 2 and 3) are replaced by empty ones
    with Store.open(settings.database_url) as store:
        verdict = verify_item(
            store=store, chain=connect_chain(settings), documents=None, item_id="0x" + bytes(item).hex()
        )
    assert verdict is not None
    assert _by_event(verdict) == {
        ("block-not-canonical", 2),
        ("block-not-canonical", 3),
        ("event-not-on-chain", 2),
        ("event-not-on-chain", 3),
    }
    assert _kinds(verdict) == {"block-not-canonical", "event-not-on-chain", "count-mismatch", "head-mismatch"}
    assert (verdict.index_count, verdict.chain_count) == (4, 2)


def test_an_index_ahead_of_a_rolled_back_node_is_judged_against_the_node_s_head(
    fresh_anvil: Anvil, tmp_path: Path
) -> None:
    """The node lost the index's last blocks (anvil_rollback): no state at the index's block, so the contract is
    read at the node's head, and the lost events are named."""
    from ledger_service.chain.signers import connect_chain
    from ledger_service.settings import Settings
    from tests.support.chain import ARTIFACTS

    deployed = deploy_all(fresh_anvil)
    activity = Activity(deployed)
    (item,) = activity.register(1, merchant=MERCHANT)
    for _ in range(2):
        activity.send(
            deployed.ledger.functions.recordEvent(
                (item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT, HUB, b"\0" * 32, b"\0" * 32)
            ),
            CARRIER,
        )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=fresh_anvil.url,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        deployment_file=write_manifest(deployed, tmp_path / "deployments" / "31337.json"),
        artifacts_dir=ARTIFACTS,
        documents_dir=tmp_path / "documents",
    )
    index_chain(settings, settings.database_url)
    fresh_anvil.rpc("anvil_rollback", [1])  # the block of seq 2 is gone, and the chain is one block shorter
    with Store.open(settings.database_url) as store:
        verdict = verify_item(
            store=store, chain=connect_chain(settings), documents=None, item_id="0x" + bytes(item).hex()
        )
    assert verdict is not None
    assert _by_event(verdict) == {("block-not-canonical", 2), ("event-not-on-chain", 2)}
    assert (verdict.index_count, verdict.chain_count) == (3, 2)


def test_an_unreachable_node_is_a_retryable_error(audited: Audited, index: Store) -> None:
    from tests.support.chain import free_port

    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    dead: ChainContext = dataclasses.replace(
        audited.chain, w3=w3, ledger=w3.eth.contract(address=audited.chain.ledger.address, abi=audited.chain.ledger.abi)
    )
    with pytest.raises(VerificationUnavailableError, match="itemOf"):
        verify_item(store=index, chain=dead, documents=None, item_id=audited.subject)


# ---- documents ----------------------------------------------------------------------------------------


def test_a_swapped_document_is_named_by_cid_and_every_citing_event(
    audited: Audited, index: Store, documents: LocalDocumentStore
) -> None:
    cid = Cid.from_digest(audited.document_digest)
    documents.blob_path(cid).write_bytes(b'{"grade":"D","notes":"swapped"}')
    verdict = _verify(audited, index, documents)
    corrupt = [f for f in verdict.findings if f.kind == "document-corrupt"]
    assert [(f.seq, f.cid, f.severity) for f in corrupt] == [(1, cid.v0, Severity.ERROR), (4, cid.v0, Severity.ERROR)]
    assert _errors(verdict) == corrupt
    assert cid.v0 in corrupt[0].message


def test_a_document_the_service_does_not_hold_is_a_warning(audited: Audited, index: Store, tmp_path: Path) -> None:
    empty = LocalDocumentStore(tmp_path / "empty")
    verdict = _verify(audited, index, empty)
    assert verdict.intact
    cid = Cid.from_digest(audited.document_digest).v0
    assert [(f.kind, f.seq, f.cid) for f in verdict.findings] == [
        ("document-missing", 0, Cid.from_digest(b"\x22" * 32).v0),
        ("document-missing", 1, cid),
        ("document-missing", 4, cid),
    ]
