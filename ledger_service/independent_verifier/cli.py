"""``ledger-verify``: checks one item's history against the chain alone and prints a report.

    ledger-verify --rpc-url URL --ledger 0xADDRESS ITEM [--file PATH ...] [--from-block N] [--json]

ITEM is the item's GS1 URI or its ``0x`` item id. ``--rpc-url`` and ``--ledger``
default to ``$LEDGER_RPC_URL`` and ``$LEDGER_ADDRESS``. Exit status: 0 when
everything holds, 1 when something does not (the report names each problem),
2 when the check could not run (bad arguments, unreachable node, no
ProvenanceLedger at that address): one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

from ledger_service.core.codes import BizStep, Disposition, decode_location
from ledger_service.documents.cid import Cid
from ledger_service.independent_verifier._rpc import NodeError, Rpc
from ledger_service.independent_verifier.check import Event, Report, cid_of_path, parse_item, verify

_ZERO = b"\0" * 32


def main(argv: Sequence[str] | None = None) -> int:
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
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = _run(args)
    except (ValueError, NodeError) as exc:
        print(f"ledger-verify: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(json.dumps(as_json(report), indent=2) if args.json else as_text(report))
    return 0 if report.verified else 1


def _run(args: argparse.Namespace) -> Report:
    rpc_url: str | None = args.rpc_url
    ledger: str | None = args.ledger
    if not rpc_url or not rpc_url.startswith(("http://", "https://")):
        raise ValueError(f"--rpc-url must be an http(s) URL of a JSON-RPC node (got {rpc_url!r})")
    if not ledger or not is_hex_address(ledger):
        raise ValueError(f"--ledger must be a contract address, 0x + 40 hex digits (got {ledger!r})")
    if ledger != ledger.lower() and ledger[2:] != ledger[2:].upper() and not is_checksum_address(ledger):
        raise ValueError(f"--ledger {ledger} has a wrong checksum (mixed case): is it mistyped?")
    if args.from_block < 0:
        raise ValueError("--from-block must be 0 or more")
    parse_item(args.item)  # refuses a malformed id before any file is read
    files = [(path, cid_of_path(path)) for path in args.file]
    with Rpc(rpc_url) as rpc:
        return verify(rpc, ledger=to_checksum_address(ledger), item=args.item, from_block=args.from_block, files=files)


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
    if report.files:
        lines += ["", "files"]
        for match in report.files:
            where = ", ".join(f"#{seq}" for seq in match.seqs) or "NOT referenced by any event of this item"
            lines.append(f"  {match.path}  {match.cid.v0}  {'event ' + where if match.seqs else where}")
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
        "problems": [{"kind": p.kind, "seq": p.seq, "message": p.message} for p in report.problems],
    }
