"""bench/batching.py's indexer part: the indexer's rate on batched scans against its rate on on-chain item events.

On a fresh anvil with every contract (tests/support/chain.py), ``--items`` items registered, and one SQLite index
and document folder, indexed by ``ledger-indexer backfill`` (a child process, as production runs it):

1. the index is brought to the head (the registrations, untimed), then a backfill with nothing new is timed:
   the CLI's start-up and an empty pass, subtracted from the timed runs below (the smaller of two such runs);
2. on-chain: ``--indexer-scans`` carrier scans recorded by ``recordEvents``, ``--per-tx`` distinct items a
   transaction; a backfill indexes them (fetch, decode, hash-chain checks, rows): on-chain events/s;
3. batched: the same number of carrier scans of the same items in the same order, sealed into documents of
   ``--batch-scans`` scans (the documents ledger-batcher would seal), put into the document folder and
   anchored with ``anchorBatch``; a backfill fetches the ``BatchAnchored`` logs and its batch resolver applies
   the documents (read, decode with every check, the submitter's roles and each item as of the anchor, the
   items' chains, the rows): batched scans/s.

The ratio is (3) over (2), both net of (1). Both runs are checked: every on-chain event in ``item_events``,
every batch applied (none refused) and every scan in ``batched_scans``. Wall-clock on a shared machine: noisy.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from _batching_throughput import READ_POINT, deployed_with_items, service_env, transit_scan_inputs
from common import SetupError, console_script, say, tail
from sqlalchemy import create_engine, text

from ledger_service.core import batch_document as bd
from ledger_service.core.batch_document import ChainHead
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.documents.cid import cid_of_bytes
from ledger_service.documents.local import LocalDocumentStore
from tests.support.chain import CARRIER, Anvil, Deployed

TARGET_RATIO = 0.5
"""Issue #23: the indexer applies batched scans at >= 50% of its rate on on-chain item events."""


def _backfill(env: dict[str, str], log: Path) -> float:
    """Wall time of one ``ledger-indexer backfill`` to the head."""
    began = time.perf_counter()
    with log.open("ab") as out:
        done = subprocess.run(
            [*console_script("ledger-indexer"), "backfill"], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SetupError(f"ledger-indexer backfill exited {done.returncode}:\n{tail(log)}")
    return took


def _mined(deployed: Deployed, hashes: list[Any], what: str) -> None:
    for tx in hashes:
        if deployed.w3.eth.wait_for_transaction_receipt(tx, timeout=300)["status"] != 1:
            raise SetupError(f"{what}: a transaction failed")


def _record_onchain(deployed: Deployed, uris: list[str], scans: int, per_tx: int) -> None:
    ledger = deployed.ledger.functions
    inputs = transit_scan_inputs(uris[:per_tx])
    carrier = deployed.accounts[CARRIER]
    sent = [ledger.recordEvents(inputs).transact({"from": carrier}) for _ in range(scans // per_tx)]
    _mined(deployed, sent, "recording the on-chain scans")


def _anchor_batches(
    deployed: Deployed, uris: list[str], *, scans: int, per_tx: int, batch_scans: int, documents: Path
) -> int:
    """Seals, stores and anchors ``scans`` carrier scans in batches; the number of batches."""
    carrier = deployed.accounts[CARRIER]
    submitter = bytes.fromhex(carrier[2:])
    anchor_address = bytes.fromhex(deployed.anchor.address[2:])
    store = LocalDocumentStore(documents)
    at = int(deployed.w3.eth.get_block("latest")["timestamp"])
    heads: dict[str, ChainHead] = {}
    sent = []
    for start in range(0, scans, batch_scans):
        # append_scan and seal (the same document ledger-batcher's BatchBuilder seals): this part also runs
        # against a checkout from before BatchBuilder, for a before/after of the indexer
        batch = [
            bd.append_scan(
                heads,
                submitter=submitter,
                item=uris[i % per_tx],
                biz_step=BizStep.TRANSPORTING,
                disposition=Disposition.IN_TRANSIT,
                read_point=READ_POINT,
                time=at,
            )
            for i in range(start, min(scans, start + batch_scans))
        ]
        document = bd.seal(
            chain_id=deployed.w3.eth.chain_id, batch_anchor=anchor_address, submitter=submitter, scans=batch
        )
        data = bd.encode(document)
        store.put([data], content_type="application/json")
        call = deployed.anchor.functions.anchorBatch(document.root, len(document.scans), cid_of_bytes(data).digest)
        sent.append(call.transact({"from": carrier}))
    _mined(deployed, sent, "anchoring the batches")
    return len(sent)


def _count(database: str, sql: str) -> int:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def indexer_ratio(args: Any, workdir: Path, start_chain: Any) -> dict[str, Any]:
    scans, per_tx = args.indexer_scans - args.indexer_scans % args.per_tx, args.per_tx
    if scans <= 0 or per_tx > args.items:
        raise SetupError("--indexer-scans must be at least --per-tx, and --per-tx at most --items")
    anvil: Anvil = start_chain()
    try:
        deployed, manifest, uris = deployed_with_items(anvil, workdir, args.items, tag="x")
        database = f"sqlite:///{workdir / 'indexer-ratio.sqlite3'}"
        env = service_env(anvil, manifest, database, workdir)
        log = workdir / "indexer-ratio.log"
        _backfill(env, log)
        idle = [_backfill(env, log)]
        events_before = _count(database, "SELECT count(*) FROM item_events")
        say(f"  indexer ratio: recording {scans:,} scans on-chain ({per_tx} a transaction)")
        _record_onchain(deployed, uris, scans, per_tx)
        onchain_s = _backfill(env, log)
        indexed = _count(database, "SELECT count(*) FROM item_events") - events_before
        if indexed != scans:
            raise SetupError(f"the backfill indexed {indexed:,} on-chain events, not {scans:,}:\n{tail(log)}")
        idle.append(_backfill(env, log))
        say(f"  indexer ratio: sealing and anchoring the same {scans:,} scans in batches of {args.batch_scans:,}")
        batches = _anchor_batches(
            deployed, uris, scans=scans, per_tx=per_tx, batch_scans=args.batch_scans, documents=workdir / "documents"
        )
        batched_s = _backfill(env, log)
        applied = _count(database, "SELECT count(*) FROM batch_anchors WHERE state = 'applied'")
        rows = _count(database, "SELECT count(*) FROM batched_scans")
        if applied != batches or rows != scans:
            raise SetupError(f"{applied} of {batches} batches applied, {rows:,} of {scans:,} scans:\n{tail(log)}")
    finally:
        anvil.stop()
    startup = min(idle)
    onchain_rate = scans / max(onchain_s - startup, 1e-9)
    batched_rate = scans / max(batched_s - startup, 1e-9)
    return {
        "scans": scans,
        "per_tx": per_tx,
        "batch_scans": args.batch_scans,
        "startup_s": round(startup, 2),
        "onchain_s": round(onchain_s, 2),
        "batched_s": round(batched_s, 2),
        "onchain_events_per_s": round(onchain_rate),
        "batched_scans_per_s": round(batched_rate),
        "ratio": round(batched_rate / onchain_rate, 3),
        "gross_ratio": round(onchain_s / batched_s, 3),
        "target_ratio": TARGET_RATIO,
    }
