"""``ledger-verify``: checks one item's history against the chain alone and prints a report.

    ledger-verify --rpc-url URL --ledger 0xADDRESS ITEM [--file PATH ...] [--from-block N] [--json]
                  [--escrow 0xRETURNS_ESCROW] [--exchange 0xEXCHANGE_ESCROW]
                  [--batch-anchor 0xBATCH_ANCHOR (--documents DIR | --gateway URL)]
    ledger-verify scan --proof FILE --rpc-url URL --batch-anchor 0xADDRESS [--json]

ITEM is the item's GS1 URI or its ``0x`` item id. ``--rpc-url`` and ``--ledger``
default to ``$LEDGER_RPC_URL`` and ``$LEDGER_ADDRESS``. Exit status: 0 when
everything holds, 1 when something does not (the report names each problem),
2 when the check could not run (bad arguments, unreachable node, no
ProvenanceLedger at that address): one line on stderr. With ``--escrow`` the
report lists the returns whose received unit was not the one sold that name the
item, with ``--exchange`` the exchanges that name it (facts, not problems). With ``--batch-anchor`` the item's
batched scans are checked too, from every ``BatchAnchored`` log and its document, read from a folder
(``--documents``) or an IPFS gateway (``--gateway``) (:mod:`.batches`).
``scan`` checks one batched scan from its Merkle proof alone (:mod:`.scan`), with the same exit statuses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

from ledger_service.core.codes import BizStep, Disposition, decode_location
from ledger_service.documents.cid import Cid
from ledger_service.independent_verifier._rpc import NodeError, Rpc
from ledger_service.independent_verifier.batches import Fetch, check_batches, folder_source, gateway_source
from ledger_service.independent_verifier.check import Event, Report, cid_of_path, parse_item, verify
from ledger_service.independent_verifier.scan import read_proof, verify_scan

_ZERO = b"\0" * 32


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["scan"]:
        return scan_main(args_list[1:])
    parser = argparse.ArgumentParser(
        prog="ledger-verify",
        description="Verify an item's provenance history against the chain: only a JSON-RPC node and the "
        "ProvenanceLedger address are used (no index, no API). Exit 0: verified; 1: not verified; 2: cannot check.",
    )
    parser.add_argument("item", metavar="ITEM", help="the item's GS1 URI, or its 0x item id (keccak256 of the URI)")
    parser.add_argument(
        "--rpc-url",
        default=os.environ.get("LEDGER_RPC_URL"),
        help="JSON-RPC URL of the chain (default: $LEDGER_RPC_URL)",
    )
    parser.add_argument(
        "--ledger", default=os.environ.get("LEDGER_ADDRESS"), help="ProvenanceLedger address (default: $LEDGER_ADDRESS)"
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="a local document whose IPFS CID an event must reference (repeatable)",
    )
    parser.add_argument(
        "--from-block",
        type=int,
        default=0,
        metavar="N",
        help="first block to read logs from (default 0; the deploy block is enough)",
    )
    parser.add_argument(
        "--escrow", metavar="0xADDRESS", help="ReturnsEscrow address: also list unit mismatches naming the item"
    )
    parser.add_argument(
        "--exchange", metavar="0xADDRESS", help="ExchangeEscrow address: also list exchanges naming the item"
    )
    parser.add_argument(
        "--batch-anchor",
        default=os.environ.get("LEDGER_BATCH_ANCHOR"),
        metavar="0xADDRESS",
        help="BatchAnchor address: also check the item's batched scans, reading every batch document "
        "(default: $LEDGER_BATCH_ANCHOR)",
    )
    parser.add_argument(
        "--documents", metavar="DIR", help="a folder holding the batch documents (any file names: found by CID)"
    )
    parser.add_argument(
        "--gateway",
        metavar="URL",
        help="an IPFS gateway to fetch the batch documents from (GET URL/ipfs/CID), or a URL with {cid} in it "
        "(a ledger service's https://HOST/v1/documents/{cid})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(args_list)
    try:
        report = _run(args)
    except (ValueError, NodeError) as exc:
        print(f"ledger-verify: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(json.dumps(as_json(report), indent=2) if args.json else as_text(report))
    return 0 if report.verified else 1


def scan_main(argv: list[str]) -> int:
    """``ledger-verify scan --proof FILE``: exit 0 when the scan is proven anchored, 1 when not, 2 when the check
    cannot run."""
    parser = argparse.ArgumentParser(
        prog="ledger-verify scan",
        description="Verify one batched scan from its Merkle proof (GET /v1/scans/batches/{id}/proofs/{position}) "
        "and the chain alone. Exit 0: anchored and proven; 1: not; 2: cannot check.",
    )
    parser.add_argument("--proof", required=True, metavar="FILE", help="the proof, as the API answers it (JSON)")
    parser.add_argument(
        "--rpc-url", default=os.environ.get("LEDGER_RPC_URL"), help="JSON-RPC URL (default: $LEDGER_RPC_URL)"
    )
    parser.add_argument(
        "--batch-anchor",
        default=os.environ.get("LEDGER_BATCH_ANCHOR"),
        metavar="0xADDRESS",
        help="BatchAnchor address (default: $LEDGER_BATCH_ANCHOR)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        rpc_url: str | None = args.rpc_url
        if not rpc_url or not rpc_url.startswith(("http://", "https://")):
            raise ValueError(f"--rpc-url must be an http(s) URL of a JSON-RPC node (got {rpc_url!r})")
        anchor = _address("--batch-anchor", args.batch_anchor)
        proof = read_proof(Path(args.proof))
        with Rpc(rpc_url) as rpc:
            report = verify_scan(rpc, batch_anchor=anchor, proof=proof)
    except (ValueError, NodeError) as exc:
        print(f"ledger-verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**asdict(report), "verified": report.verified}, indent=2))
    else:
        print(f"scan #{report.seq} of item {report.item_id} by {report.submitter}, root {report.root}")
        for problem in report.problems:
            print(f"  PROBLEM: {problem}")
        print("VERIFIED: the scan is in a batch its submitter anchored" if report.verified else "NOT VERIFIED")
    return 0 if report.verified else 1


def _run(args: argparse.Namespace) -> Report:
    rpc_url: str | None = args.rpc_url
    ledger: str | None = args.ledger
    if not rpc_url or not rpc_url.startswith(("http://", "https://")):
        raise ValueError(f"--rpc-url must be an http(s) URL of a JSON-RPC node (got {rpc_url!r})")
    ledger = _address("--ledger", ledger)
    escrow = None if args.escrow is None else _address("--escrow", args.escrow)
    exchange = None if args.exchange is None else _address("--exchange", args.exchange)
    if args.from_block < 0:
        raise ValueError("--from-block must be 0 or more")
    parse_item(args.item)  # refuses a malformed id before any file is read
    files = [(path, cid_of_path(path)) for path in args.file]
    batch_anchor, fetch = _batch_sources(args)
    with Rpc(rpc_url) as rpc:
        report = verify(
            rpc,
            ledger=ledger,
            item=args.item,
            from_block=args.from_block,
            files=files,
            escrow=escrow,
            exchange=exchange,
        )
        if batch_anchor is not None and fetch is not None:
            report.batches = check_batches(
                rpc,
                batch_anchor=batch_anchor,
                item=report.item_id,
                chain_id=report.chain_id,
                start=args.from_block,
                end=report.block,
                fetch=fetch,
            )
            report.problems.extend(report.batches.problems)
        return report


def _batch_sources(args: argparse.Namespace) -> tuple[str | None, Fetch | None]:
    if args.documents is not None and args.gateway is not None:
        raise ValueError("give the batch documents' --documents folder or their --gateway, not both")
    if args.batch_anchor is None:
        if args.documents is not None or args.gateway is not None:
            raise ValueError("--documents and --gateway are for batched scans: give the --batch-anchor address too")
        return None, None
    anchor = _address("--batch-anchor", args.batch_anchor)
    if args.documents is not None:
        return anchor, folder_source(Path(args.documents))
    if args.gateway is not None:
        return anchor, gateway_source(args.gateway)
    raise ValueError(
        "--batch-anchor needs the batch documents: a --documents folder or an IPFS --gateway URL (every anchor's "
        "document is read, so a batch cannot be left out unnoticed)"
    )


def _address(flag: str, value: str | None) -> str:
    if not value or not is_hex_address(value):
        raise ValueError(f"{flag} must be a contract address, 0x + 40 hex digits (got {value!r})")
    if value != value.lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
        raise ValueError(f"{flag} {value} has a wrong checksum (mixed case): is it mistyped?")
    return to_checksum_address(value)


# ---- the report ---------------------------------------------------------------------------


def _time(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp} (not a valid time)"


def _name(table: type[BizStep] | type[Disposition], code: int) -> str:
    try:
        return table(code).cbv
    except ValueError:
        return f"unknown code {code}"


def _cid(digest: bytes) -> str | None:
    return None if digest == _ZERO else Cid(digest).v0


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def verdict(report: Report) -> str:
    """The first line of the report."""
    item = _hex(report.item_id)
    if report.verified:
        count = report.record.count
        files = f", {len(report.files)} file(s) referenced" if report.files else ""
        batches = report.batches
        if batches is not None:
            files += (
                f", {len(batches.scans)} batched scan(s) chained and proven in {batches.documents} of "
                f"{batches.anchors} anchored batch document(s)"
            )
        return f"VERIFIED: item {item}: {count} events replay to the contract's head at block {report.block}{files}"
    return f"NOT VERIFIED: item {item}: " + "; ".join(p.message for p in report.problems)


def _event_lines(event: Event) -> list[str]:
    link, pos = event.link, event.position
    lines = [
        f"  #{link.seq:<3} {_name(BizStep, link.biz_step)} / {_name(Disposition, link.disposition)}"
        f"  at {_time(link.timestamp)}",
        f"       actor {link.actor}, block {pos.block}, tx {pos.tx}",
        f"       location {decode_location(link.location) or '-'}",
    ]
    if (cid := _cid(link.document)) is not None:
        lines.append(f"       document {cid} (digest {_hex(link.document)})")
    if link.biz_transaction != _ZERO:
        lines.append(f"       business transaction {_hex(link.biz_transaction)}")
    lines.append(f"       eventHash {_hex(link.event_hash)}")
    return lines


def as_text(report: Report) -> str:
    """The report for people."""
    record, reg = report.record, report.registration
    lines = [
        verdict(report),
        "",
        f"ledger      {report.ledger} on chain {report.chain_id}, read as of block {report.block}"
        + (f" (logs from block {report.from_block})" if report.from_block else ""),
        f"item id     {_hex(report.item_id)}" + (f" (of {report.asked})" if report.asked[:2] != "0x" else ""),
    ]
    if reg is not None:
        lines += [
            f"uri         {reg.uri}",
            f"registered  by manufacturer {reg.manufacturer} for merchant {reg.merchant}, GTIN {reg.gtin},"
            f" block {reg.position.block}, tx {reg.position.tx}",
        ]
    destroyed = ", destroyed" if record.destroyed else ""
    if reg is not None or report.events or record.count:
        lines += [
            f"contract    head {_hex(record.head)}, {record.count} events, merchant of record {record.merchant}"
            + destroyed,
            f"replayed    head {_hex(report.replayed_head)}, {len({e.link.seq for e in report.events})} events",
        ]
    if report.events:
        lines += ["", "events (in chain order)"]
        for event in report.events:
            lines += _event_lines(event)
    if report.batches is not None:
        lines += ["", f"batched scans ({report.batches.anchors} anchors read, {report.batches.documents} documents)"]
        for fact in report.batches.scans:
            scan, anchor = fact.scan, fact.anchor
            lines += [
                f"  #{scan.seq:<3} {scan.biz_step.cbv} / {scan.disposition.cbv}  at {_time(scan.time)}",
                f"       submitter {to_checksum_address(_hex(anchor.submitter))}, {scan.read_point}",
                f"       batch root {_hex(anchor.root)}, leaf {fact.leaf_index}, block {anchor.block}, tx {anchor.tx}",
                f"       leaf {_hex(fact.leaf)}",
            ]
    if report.files:
        lines += ["", "files"]
        for match in report.files:
            where = ", ".join(f"#{seq}" for seq in match.seqs) or "NOT referenced by any event of this item"
            lines.append(f"  {match.path}  {match.cid.v0}  {'event ' + where if match.seqs else where}")
    if report.exchanges is not None:
        lines += ["", "exchanges naming the item" if report.exchanges else "exchanges: none name the item"]
        for x in report.exchanges:
            role = "original" if x.original_item_id == report.item_id else "replacement"
            lines.append(
                f"  {_hex(x.exchange_id)}  this item is the {role}; {_hex(x.original_item_id)} ->"
                f" {_hex(x.replacement_item_id)}, difference {x.price_difference},"
                f" {'instant' if x.instant else 'standard'}, block {x.position.block}"
            )
    if report.unit_mismatches is not None:
        lines += [
            "",
            "unit checks: a unit received is not the one sold"
            if report.unit_mismatches
            else "unit checks: no mismatch",
        ]
        for m in report.unit_mismatches:
            lines.append(
                f"  return {_hex(m.return_id)}: sold {_hex(m.sold_item_id)}, scanned {_hex(m.scanned_item_id)}"
                f" ({_name(BizStep, m.biz_step)} by {m.actor} at {_time(m.at)}, block {m.position.block})"
            )
    if report.problems:
        lines += ["", "problems"]
        lines += [f"  - {p.message}" for p in report.problems]
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    """The report for machines: the same facts, hashes as 0x hex, times as Unix seconds."""
    reg = report.registration
    return {
        "verified": report.verified,
        "verdict": verdict(report),
        "ledger": report.ledger,
        "chainId": report.chain_id,
        "block": report.block,
        "fromBlock": report.from_block,
        "itemId": _hex(report.item_id),
        "registration": None
        if reg is None
        else {
            "uri": reg.uri,
            "manufacturer": reg.manufacturer,
            "merchant": reg.merchant,
            "gtin": reg.gtin,
            "metadataDigest": _hex(reg.metadata_digest),
            "block": reg.position.block,
            "tx": reg.position.tx,
        },
        "contract": {
            "head": _hex(report.record.head),
            "count": report.record.count,
            "merchant": report.record.merchant,
            "destroyed": report.record.destroyed,
        },
        "replayedHead": _hex(report.replayed_head),
        "events": [
            {
                "seq": e.link.seq,
                "bizStep": _name(BizStep, e.link.biz_step),
                "disposition": _name(Disposition, e.link.disposition),
                "actor": e.link.actor,
                "timestamp": e.link.timestamp,
                "time": _time(e.link.timestamp),
                "location": decode_location(e.link.location),
                "document": _cid(e.link.document),
                "documentDigest": _hex(e.link.document),
                "bizTransaction": _hex(e.link.biz_transaction),
                "prevHash": _hex(e.link.prev_hash),
                "eventHash": _hex(e.link.event_hash),
                "recomputedHash": _hex(e.recomputed),
                "block": e.position.block,
                "logIndex": e.position.log_index,
                "tx": e.position.tx,
            }
            for e in report.events
        ],
        "files": [{"path": f.path, "cid": f.cid.v0, "cidV1": f.cid.v1, "events": list(f.seqs)} for f in report.files],
        "batches": None
        if report.batches is None
        else {
            "anchors": report.batches.anchors,
            "documents": report.batches.documents,
            "scans": [
                {
                    "seq": f.scan.seq,
                    "bizStep": f.scan.biz_step.cbv,
                    "disposition": f.scan.disposition.cbv,
                    "time": f.scan.time,
                    "readPoint": f.scan.read_point,
                    "prevHash": _hex(f.scan.prev_hash),
                    "leaf": _hex(f.leaf),
                    "leafIndex": f.leaf_index,
                    "root": _hex(f.anchor.root),
                    "submitter": to_checksum_address(_hex(f.anchor.submitter)),
                    "document": Cid(f.anchor.digest).v0,
                    "block": f.anchor.block,
                    "logIndex": f.anchor.log_index,
                    "tx": f.anchor.tx,
                }
                for f in report.batches.scans
            ],
        },
        "problems": [{"kind": p.kind, "seq": p.seq, "message": p.message} for p in report.problems],
        "exchanges": None
        if report.exchanges is None
        else [
            {
                "exchangeId": _hex(x.exchange_id),
                "originalItemId": _hex(x.original_item_id),
                "replacementItemId": _hex(x.replacement_item_id),
                "merchant": x.merchant,
                "priceDifference": x.price_difference,
                "instant": x.instant,
                "block": x.position.block,
                "tx": x.position.tx,
            }
            for x in report.exchanges
        ],
        "unitMismatches": None
        if report.unit_mismatches is None
        else [
            {
                "returnId": _hex(m.return_id),
                "soldItemId": _hex(m.sold_item_id),
                "scannedItemId": _hex(m.scanned_item_id),
                "scannedMerchant": m.scanned_merchant,
                "actor": m.actor,
                "bizStep": _name(BizStep, m.biz_step),
                "at": m.at,
                "block": m.position.block,
                "tx": m.position.tx,
            }
            for m in report.unit_mismatches
        ],
    }
