"""Merkle-batched scans (#23), the gas part: what anchoring a batch costs per event, by batch size, against the
same scans recorded one by one on-chain.

What it measures, on a fresh local anvil with ProvenanceLedger and BatchAnchor:

1. for each batch size (100, 1,000, 10,000 by default): a real batch document of in-transit scans of
   ``size / 4`` items (core/batch_document.py), sealed (Merkle root) and encoded, its CID digest computed as
   the document store does; then ``anchorBatch`` sent by the carrier (its role is read first) and by a
   merchant (read third: the dearest role check). Gas per event = the anchor transaction's gas / size: the
   scans themselves never touch the chain;
2. what proving one scan on-chain costs at that size (``verifyScan``, estimated as a transaction: it
   includes the 21,000 of any transaction), the proof's depth, and the document's size;
3. the reference: the same kind of scan recorded on-chain, 100 in one ``recordEvents`` by the carrier.

Gas figures are exact and deterministic. The seal times (Python: leaves, tree, canonical JSON, CID) and
decode times (every check of core/batch_document.py's ``decode``, the indexer's share) are wall-clock on
this machine, printed with its load average; they tell the batcher's and the indexer's CPU cost, not a target.
Target: <= 100 gas per event at 1,000 events per batch.

The throughput part (``--parts throughput``: the service end to end) is described in bench/_batching_throughput.py;
the indexer part (``--parts indexer``: ``ledger-indexer``'s rate on batched scans against its rate on the same
scans recorded on-chain, target >= 50%) in bench/_batching_indexer.py.

    .venv/bin/python bench/batching.py [--sizes 100,1000,10000] [--parts gas,throughput,indexer]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _batching_indexer import indexer_ratio  # noqa: E402
from _batching_throughput import throughput  # noqa: E402
from common import SetupError, run_in_workdir, say, start_chain, table, verdict  # noqa: E402
from web3.contract import Contract  # noqa: E402

from ledger_service.core import batch_document as bd  # noqa: E402
from ledger_service.core.codes import BizStep, Disposition, encode_location  # noqa: E402
from ledger_service.core.hashchain import item_id  # noqa: E402
from ledger_service.documents.cid import cid_of_bytes  # noqa: E402
from tests.support.chain import CARRIER, MANUFACTURER, MERCHANT, Deployed, deploy_all, deploy_contract  # noqa: E402

TARGET_GAS_PER_EVENT = 100
TARGET_ACK = 20_000
"""Acknowledged scans/s through POST /v1/scans, sustained."""
TARGET_E2E = 5_000
"""Scans/s from acknowledgement to the index."""
TARGET_SIZE = 1_000
ONCHAIN_BATCH = 100
READ_POINT = "0614141.00777.0"
T0 = 1_765_000_000


def _send(deployed: Deployed, call: Any, sender: str) -> int:
    receipt = deployed.w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))
    if receipt["status"] != 1:
        raise SetupError(f"a transaction failed: {receipt['transactionHash'].hex()}")
    return int(receipt["gasUsed"])


def _document(size: int, submitter: bytes, anchor: str, chain_id: int) -> bd.BatchDocument:
    heads: dict[str, bd.ChainHead] = {}
    items = max(1, size // 4)
    scans = [
        bd.append_scan(
            heads,
            submitter=submitter,
            item=f"urn:epc:id:sgtin:0614141.107346.{i % items}",
            biz_step=BizStep.TRANSPORTING,
            disposition=Disposition.IN_TRANSIT,
            read_point=READ_POINT,
            time=T0 + i,
        )
        for i in range(size)
    ]
    return bd.seal(chain_id=chain_id, batch_anchor=bytes.fromhex(anchor[2:]), submitter=submitter, scans=scans)


def _batch(deployed: Deployed, anchor: Contract, size: int) -> dict[str, Any]:
    carrier, merchant = deployed.accounts[CARRIER], deployed.accounts[MERCHANT]
    chain_id = deployed.w3.eth.chain_id
    started = time.perf_counter()
    document = _document(size, bytes.fromhex(carrier[2:]), anchor.address, chain_id)
    data = bd.encode(document)
    digest = cid_of_bytes(data).digest
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    if bd.decode(data) != document:
        raise SetupError(f"the batch of {size} did not decode to itself")
    decode_s = time.perf_counter() - started
    tree = document.tree()
    gas = {
        "carrier": _send(deployed, anchor.functions.anchorBatch(document.root, size, digest), carrier),
        # the merchant anchors the same root under its own name: the same storage writes, one more role read
        "merchant": _send(deployed, anchor.functions.anchorBatch(document.root, size, digest), merchant),
    }
    last = size - 1
    values: list[bytes | int | str] = list(document.scans[last].leaf_values(document.submitter))
    values[-1] = carrier
    verify = anchor.functions.verifyScan(values, document.root, tree.proof(last))
    if not verify.call():
        raise SetupError(f"a scan of the batch of {size} did not verify against its anchor")
    return {
        "size": size,
        "gas_carrier": gas["carrier"],
        "gas_merchant": gas["merchant"],
        "gas_per_event": round(gas["merchant"] / size, 1),
        "verify_scan_gas": int(verify.estimate_gas()),
        "proof_depth": len(tree.proof(last)),
        "document_bytes": len(data),
        "seal_ms": round(seal_s * 1000, 1),
        "seal_us_per_scan": round(seal_s / size * 1e6, 1),
        "decode_ms": round(decode_s * 1000, 1),
    }


def _onchain_reference(deployed: Deployed) -> float:
    """Gas per event of ONCHAIN_BATCH carrier scans in one recordEvents, on items registered for it."""
    ledger = deployed.ledger.functions
    manufacturer, merchant = deployed.accounts[MANUFACTURER], deployed.accounts[MERCHANT]
    location = encode_location(READ_POINT)
    uris = [f"urn:epc:id:sgtin:0614141.999999.{i}" for i in range(ONCHAIN_BATCH)]
    _send(deployed, ledger.registerItems([(u, 0, merchant, bytes(32), location) for u in uris]), manufacturer)
    step, disposition = int(BizStep.TRANSPORTING), int(Disposition.IN_TRANSIT)
    inputs = [(item_id(u), step, disposition, location, bytes(32), bytes(32)) for u in uris]
    return _send(deployed, ledger.recordEvents(inputs), deployed.accounts[CARRIER]) / ONCHAIN_BATCH


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = run_gas(args) if "gas" in parts else {}
    if "throughput" in parts:
        figures["throughput"] = throughput(args, workdir, start_chain)
    if "indexer" in parts:
        figures["indexer"] = indexer_ratio(args, workdir, start_chain)
    figures["load_average"] = _load()
    return figures


def run_gas(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    say(f"bench/batching.py: anchoring batches of {', '.join(map(str, sizes))} scans (load {_load()})")
    anvil = start_chain()
    try:
        deployed = deploy_all(anvil)
        anchor = deploy_contract(deployed.w3, "BatchAnchor", deployed.ledger.address, sender=deployed.accounts[0])
        batches = []
        for size in sizes:
            batches.append(_batch(deployed, anchor, size))
            say(f"  {size}: {batches[-1]['gas_per_event']} gas per event")
        onchain = _onchain_reference(deployed)
    finally:
        anvil.stop()
    at_target = next((b for b in batches if b["size"] == TARGET_SIZE), None)
    return {
        "batches": batches,
        "onchain_gas_per_event": round(onchain, 1),
        "target_gas_per_event": TARGET_GAS_PER_EVENT,
        "target_met": None if at_target is None else at_target["gas_per_event"] <= TARGET_GAS_PER_EVENT,
        "load_average": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(figures: dict[str, Any]) -> None:
    if "batches" in figures:
        report_gas(figures)
    if "throughput" in figures:
        report_throughput(figures["throughput"])
    if "indexer" in figures:
        report_indexer(figures["indexer"])
    say(f"load average at the end of the run: {figures['load_average']} (the times are wall-clock)")


def report_throughput(t: dict[str, Any]) -> None:
    onchain = t["onchain_scans_per_s"]
    ack, e2e = t["ack_scans_per_s"], t["e2e_scans_per_s"]
    rows = [
        ["figure", "measured", "vs on-chain scans", "target", ""],
        [
            f"acknowledged (POST /v1/scans, {t['per_request']} a request, {t['connections']} connections, "
            f"{t['duration_s']} s)",
            f"{ack:,} scans/s",
            f"{ack / onchain:,.1f}x",
            f">= {TARGET_ACK:,}",
            verdict(ack >= TARGET_ACK),
        ],
        [
            "end to end (acknowledged -> anchored -> indexed, at saturation)",
            f"{e2e:,} scans/s",
            f"{e2e / onchain:,.1f}x",
            f">= {TARGET_E2E:,}",
            verdict(e2e >= TARGET_E2E),
        ],
        [
            f"acknowledgement -> indexed at {t['latency_rate']:,} scans/s: p50 / p95",
            f"{t['latency_p50_ms']:,} / {t['latency_p95_ms']:,} ms",
            "",
            f"p95 <= {t['latency_target_ms']:,} ms",
            verdict(t["latency_p95_ms"] <= t["latency_target_ms"]),
        ],
    ]
    say("")
    for line in table(rows, align="lrrrl"):
        say(line)
    say(
        f"on-chain reference in the same run: {onchain:,} scans/s ({t['per_request']} carrier scans per "
        f"recordEvents, sent back to back); batches of {t['batch_scans']:,} scans sealed at least every "
        f"{t['seal_s']} s; {t['workers']} API workers; {t['ack_errors']} non-2xx answers"
    )


def report_indexer(r: dict[str, Any]) -> None:
    rows = [
        ["ledger-indexer backfill of", "wall (start-up subtracted)", "rate", "", ""],
        [
            f"{r['scans']:,} on-chain item events ({r['per_tx']} a recordEvents)",
            f"{r['onchain_s']} s ({r['onchain_s'] - r['startup_s']:.2f} s)",
            f"{r['onchain_events_per_s']:,} events/s",
            "",
            "",
        ],
        [
            f"the same {r['scans']:,} scans batched ({r['batch_scans']:,} a BatchAnchored)",
            f"{r['batched_s']} s ({r['batched_s'] - r['startup_s']:.2f} s)",
            f"{r['batched_scans_per_s']:,} scans/s",
            f"{r['ratio']:.0%} of on-chain",
            f">= {r['target_ratio']:.0%} {verdict(r['ratio'] >= r['target_ratio'])}",
        ],
    ]
    say("")
    for line in table(rows, align="lrrrl"):
        say(line)
    say(
        f"start-up and an empty pass ({r['startup_s']} s, the smaller of two backfills with nothing new) "
        f"subtracted from both; without subtracting it the ratio is {r['gross_ratio']:.0%}"
    )


def report_gas(figures: dict[str, Any]) -> None:
    rows = [
        [
            *("scans", "anchor gas (carrier)", "anchor gas (merchant)", "gas/event", "x cheaper"),
            *("verifyScan gas", "proof depth", "document", "seal (Python)", "decode (Python)"),
        ]
    ]
    onchain = figures["onchain_gas_per_event"]
    for b in figures["batches"]:
        rows.append(
            [
                f"{b['size']:,}",
                f"{b['gas_carrier']:,}",
                f"{b['gas_merchant']:,}",
                f"{b['gas_per_event']:,}",
                f"{onchain / b['gas_per_event']:,.0f}",
                f"{b['verify_scan_gas']:,}",
                str(b["proof_depth"]),
                f"{b['document_bytes'] / 1024:,.0f} KiB",
                f"{b['seal_ms']:,} ms",
                f"{b['decode_ms']:,} ms",
            ]
        )
    say("")
    for line in table(rows, align="rrrrrrrrrr"):
        say(line)
    say(f"on-chain reference: {onchain:,} gas per event ({ONCHAIN_BATCH} carrier scans in one recordEvents)")
    say(
        f"target: <= {TARGET_GAS_PER_EVENT} gas per event at {TARGET_SIZE:,} events per batch: "
        f"{verdict(figures['target_met'])}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="batch sizes, comma-separated")
    parser.add_argument("--parts", default="gas,throughput,indexer", help="gas, throughput, indexer (comma-separated)")
    parser.add_argument("--items", type=int, default=1000, help="throughput: items registered and scanned")
    parser.add_argument("--per-request", type=int, default=100, help="throughput: scans in one POST /v1/scans")
    parser.add_argument("--connections", type=int, default=16, help="throughput: wrk's keep-alive connections")
    parser.add_argument("--duration", type=int, default=60, help="throughput: seconds of saturation load")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="throughput: API processes")
    parser.add_argument("--batch-scans", type=int, default=1000, help="throughput: LEDGER_BATCH_MAX_SCANS")
    parser.add_argument("--seal-s", type=float, default=2.0, help="throughput: LEDGER_BATCH_SEAL_S")
    parser.add_argument("--rate", type=int, default=5000, help="throughput: scans/s of the latency load")
    parser.add_argument("--latency-duration", type=float, default=20, help="throughput: seconds of latency load")
    parser.add_argument("--reference-txs", type=int, default=20, help="throughput: on-chain reference transactions")
    parser.add_argument("--indexer-scans", type=int, default=50_000, help="indexer: scans on-chain and batched")
    parser.add_argument("--per-tx", type=int, default=250, help="indexer: scans (distinct items) per recordEvents")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    return run_in_workdir(__file__, lambda workdir: run(args, workdir), keep=args.keep, report=report)


if __name__ == "__main__":
    sys.exit(main())
