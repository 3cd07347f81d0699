"""An item's history (with its verdict) as JSON, CSV, or an EPCIS 2.0 JSON-LD document.

Pure functions of :class:`~ledger_service.verification.history.ItemHistory` and
:class:`~ledger_service.verification.model.ItemVerdict`; no I/O.

- :func:`history_json`: every field of every event plus the verdict (the API's
  ``application/json`` body, see api/schemas/audit.py), and the exchanges and
  unit mismatches naming the item (no consumer address: they are public).
- :func:`history_csv`: one line per event in seq order, plus one line per
  event the verdict says is missing from the index; the ``findings`` column
  lists the kinds of the findings about that event. Cells that a spreadsheet
  would run as a formula are prefixed with ``'``.
- :func:`history_epcis`: an ``EPCISDocument`` (EPCIS 2.0, JSON-LD) whose
  ``eventList`` holds one ``ObjectEvent`` per event, with the item's EPC URI as
  registered (an SGTIN URN or a GS1 Digital Link, as is) and the chain data
  under the ``ledger:`` namespace, written by the serializer the EPCIS query
  interface answers with (:func:`ledger_service.epcis.serialize.chain_event`);
  each batched scan is an ``ObjectEvent`` too, carrying its proof as the
  extension ``ledger:batch`` (:func:`batched_event`): the anchor's position,
  transaction and root, the batch document's CID, the leaf's values in
  ``StandardMerkleTree`` form, the leaf and the Merkle proof. The events are
  in time order.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ledger_service.core.batch_document import LEAF_ENCODING, leaf_json_values
from ledger_service.core.codes import BizStep
from ledger_service.core.spreadsheet import safe_cell
from ledger_service.epcis.serialize import (
    EPCIS_CONTEXT,
    LEDGER_NS,
    BatchProof,
    ChainRecord,
    batch_member,
    chain_event,
    epcis_document,
    event_uuid,
    iso_seconds,
)
from ledger_service.verification.history import BatchedHistoryScan, HistoryEvent, ItemHistory
from ledger_service.verification.model import Finding, ItemVerdict, Severity

__all__ = [
    "CSV_COLUMNS",
    "EPCIS_CONTEXT",
    "LEDGER_NS",
    "batched_event",
    "batched_json",
    "event_uuid",
    "history_csv",
    "history_epcis",
    "history_json",
    "item_epc",
    "verdict_json",
]

CSV_COLUMNS: tuple[str, ...] = (
    "seq",
    "event_time",
    "biz_step",
    "disposition",
    "actor",
    "actor_roles",
    "read_point",
    "document_cid",
    "biz_transaction",
    "biz_transaction_type",
    "prev_hash",
    "event_hash",
    "tx_hash",
    "block_number",
    "block_hash",
    "log_index",
    "findings",
)


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "severity": finding.severity.value,
        "message": finding.message,
        "seq": finding.seq,
        "cid": finding.cid,
    }


def _event_json(event: HistoryEvent) -> dict[str, Any]:
    cid = event.document_cid
    return {
        "seq": event.seq,
        "biz_step": event.biz_step_name,
        "biz_step_code": event.biz_step,
        "disposition": event.disposition_name,
        "disposition_code": event.disposition,
        "actor": event.actor,
        "actor_roles": list(event.actor_roles),
        "event_time": iso_seconds(event.timestamp),
        "timestamp": event.timestamp,
        "read_point": event.read_point,
        "location": event.location,
        "document": event.document if cid is not None else None,
        "document_cid": None if cid is None else cid.v0,
        "document_cid_v1": None if cid is None else cid.v1,
        "biz_transaction": event.biz_transaction if event.has_biz_transaction else None,
        "biz_transaction_type": event.biz_transaction_type if event.has_biz_transaction else None,
        "prev_hash": event.prev_hash,
        "event_hash": event.event_hash,
        "tx_hash": event.tx_hash,
        "tx_index": event.tx_index,
        "block_number": event.block_number,
        "block_hash": event.block_hash,
        "log_index": event.log_index,
    }


def _leaf_values(scan: BatchedHistoryScan, uri: str | None) -> list[str] | None:
    made = None if uri is None else scan.as_scan(uri)
    return None if made is None else leaf_json_values(made, bytes.fromhex(scan.submitter[2:]))


def batched_json(history: ItemHistory, scan: BatchedHistoryScan) -> dict[str, Any]:
    """A batched scan with its batch and Merkle proof (the API's ``batched_scans`` entries)."""
    cid = scan.document_cid
    return {
        "seq": scan.seq,
        "biz_step": scan.biz_step_name,
        "disposition": scan.disposition_name,
        "read_point": scan.read_point,
        "event_time": iso_seconds(scan.time),
        "time": scan.time,
        "document": None if scan.document == _ZERO_HASH else scan.document,
        "biz_transaction": None if scan.biz_transaction == _ZERO_HASH else scan.biz_transaction,
        "submitter": scan.submitter,
        "prev_hash": scan.prev_hash,
        "batch_id": scan.batch_id,
        "leaf_index": scan.leaf_index,
        "root": scan.root,
        "anchor_tx": scan.anchor_tx,
        "anchor_block": scan.anchor_block,
        "anchor_log_index": scan.anchor_log_index,
        "batch_document_cid": None if cid is None else cid.v0,
        "encoding": list(LEAF_ENCODING),
        "values": _leaf_values(scan, history.uri),
        "leaf": scan.leaf_hash,
        "proof": list(scan.proof),
    }


def batched_event(epc: str, history: ItemHistory, scan: BatchedHistoryScan) -> dict[str, Any]:
    """A batched scan as an EPCIS 2.0 ``ObjectEvent`` with its proof in the ``ledger:batch`` extension."""
    out: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": iso_seconds(scan.time),
        "eventTimeZoneOffset": "+00:00",
        "eventID": f"{LEDGER_NS}batchedScan/{scan.leaf_hash}",
        "epcList": [epc],
        "action": "OBSERVE",
        "bizStep": scan.biz_step_name or f"{LEDGER_NS}bizStep/{scan.biz_step}",
        "disposition": scan.disposition_name or f"{LEDGER_NS}disposition/{scan.disposition}",
    }
    if scan.read_point:
        out["readPoint"] = {"id": f"urn:epc:id:sgln:{scan.read_point}"}
    if scan.biz_transaction != _ZERO_HASH:
        out["bizTransactionList"] = [{"bizTransaction": f"{LEDGER_NS}bizTransaction/{scan.biz_transaction}"}]
    out["ledger:itemId"] = history.item_id
    out["ledger:batch"] = _batch_extension(scan, history.uri)
    return out


def _batch_extension(scan: BatchedHistoryScan, uri: str | None) -> dict[str, Any]:
    """The ``ledger:batch`` extension of a batched scan's EPCIS event (``uri``: the item's GS1 URI, which its leaf
    hashes): its batch, anchor and Merkle proof."""
    cid = scan.document_cid
    return batch_member(
        BatchProof(
            batch_id=scan.batch_id,
            seq=scan.seq,
            prev_hash=scan.prev_hash,
            submitter=scan.submitter,
            leaf_index=scan.leaf_index,
            root=scan.root,
            anchor_tx=scan.anchor_tx,
            anchor_block=scan.anchor_block,
            anchor_log_index=scan.anchor_log_index,
            document_cid=None if cid is None else cid.v0,
            leaf_values=_leaf_values(scan, uri),
            leaf=scan.leaf_hash,
            proof=scan.proof,
        )
    )


def verdict_json(verdict: ItemVerdict) -> dict[str, Any]:
    """The verdict as a JSON object."""
    errors = sum(1 for f in verdict.findings if f.severity is Severity.ERROR)
    return {
        "intact": verdict.intact,
        "errors": errors,
        "warnings": len(verdict.findings) - errors,
        "index_count": verdict.index_count,
        "index_head": verdict.index_head,
        "chain_count": verdict.chain_count,
        "chain_head": verdict.chain_head,
        "blocks_checked": verdict.blocks_checked,
        "documents_checked": verdict.documents_checked,
        "findings": [_finding_json(f) for f in verdict.findings],
    }


def history_json(history: ItemHistory, verdict: ItemVerdict, *, checked_at: int) -> dict[str, Any]:
    """The history and its verdict as one JSON object (``checked_at``: unix seconds of the check)."""
    reg = history.registration
    return {
        "item_id": history.item_id,
        "uri": history.uri,
        "epc": item_epc(history),
        "merchant": history.merchant,
        "destroyed": history.destroyed,
        "registration": None
        if reg is None
        else {
            "uri": reg.uri,
            "gtin": reg.gtin,
            "manufacturer": reg.manufacturer,
            "merchant": reg.merchant,
            "metadata_digest": reg.metadata_digest,
            "block_number": reg.block_number,
            "tx_hash": reg.tx_hash,
        },
        "indexed_block": history.indexed_block,
        "events": [_event_json(e) for e in history.events],
        "count": len(history.events),
        "batched_scans": [batched_json(history, scan) for scan in history.batched],
        "exchanges": [
            {
                "exchange_id": x.exchange_id,
                "role": "original" if x.original_item_id == history.item_id else "replacement",
                "original_item_id": x.original_item_id,
                "replacement_item_id": x.replacement_item_id,
                "merchant": x.merchant,
                "token": x.token,
                "replacement_price": str(x.replacement_price),
                "price_difference": str(x.price_difference),
                "instant": x.instant,
                "extra_paid": x.extra_paid,
                "released": x.released,
                "collateral_settled": x.collateral_settled,
                "block_number": x.block_number,
                "tx_hash": x.tx_hash,
            }
            for x in history.exchanges
        ],
        "unit_mismatches": [
            {
                "return_id": m.return_id,
                "role": "sold" if m.sold_item_id == history.item_id else "scanned",
                "sold_item_id": m.sold_item_id,
                "scanned_item_id": m.scanned_item_id,
                "scanned_on_ledger": m.scanned_merchant != _ZERO_ADDRESS,
                "biz_step": _cbv_step(m.biz_step),
                "at": iso_seconds(m.at),
                "block_number": m.block_number,
                "tx_hash": m.tx_hash,
            }
            for m in history.unit_mismatches
        ],
        "verification": {**verdict_json(verdict), "checked_at": iso_seconds(checked_at)},
    }


_ZERO_ADDRESS = "0x" + "00" * 20
_ZERO_HASH = "0x" + "00" * 32


def _cbv_step(code: int) -> str | None:
    try:
        return BizStep(code).cbv
    except ValueError:
        return None


def history_csv(history: ItemHistory, verdict: ItemVerdict) -> str:
    """The events as CSV (header line first, CRLF line ends as RFC 4180 says)."""
    kinds: dict[int, list[str]] = {}
    for finding in verdict.findings:
        if finding.seq is not None and finding.kind not in kinds.setdefault(finding.seq, []):
            kinds[finding.seq].append(finding.kind)
    rows: list[tuple[int, list[object]]] = []
    seen: set[int] = set()
    for event in history.events:
        cid = event.document_cid
        seen.add(event.seq)
        rows.append(
            (
                event.seq,
                [
                    event.seq,
                    iso_seconds(event.timestamp),
                    event.biz_step_name or event.biz_step,
                    event.disposition_name or event.disposition,
                    event.actor,
                    " ".join(event.actor_roles),
                    event.read_point,
                    None if cid is None else cid.v0,
                    event.biz_transaction if event.has_biz_transaction else None,
                    event.biz_transaction_type if event.has_biz_transaction else None,
                    event.prev_hash,
                    event.event_hash,
                    event.tx_hash,
                    event.block_number,
                    event.block_hash,
                    event.log_index,
                    " ".join(kinds.get(event.seq, [])),
                ],
            )
        )
    for seq, found in kinds.items():
        if seq not in seen:  # an event the index lacks: a line that says so
            rows.append((seq, [seq, *([None] * (len(CSV_COLUMNS) - 2)), " ".join(found)]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for _, cells in sorted(rows, key=lambda r: r[0]):
        writer.writerow([safe_cell(c) for c in cells])
    return out.getvalue()


def item_epc(history: ItemHistory) -> str:
    """The item's identifier for EPCIS: its registered GS1 URI as is, or a ledger URI when the index lacks the
    registration."""
    uri = history.uri
    return uri if uri else f"{LEDGER_NS}item/{history.item_id}"


def chain_record(item_id: str, event: HistoryEvent) -> ChainRecord:
    """The serializer's view of a history event (its proof)."""
    cid = event.document_cid
    return ChainRecord(
        item_id=item_id,
        seq=event.seq,
        biz_step=event.biz_step,
        disposition=event.disposition,
        actor=event.actor,
        location=event.location,
        document=event.document,
        document_cid=None if cid is None else cid.v0,
        biz_transaction=event.biz_transaction,
        biz_transaction_type=event.biz_transaction_type,
        timestamp=event.timestamp,
        prev_hash=event.prev_hash,
        event_hash=event.event_hash,
        tx_hash=event.tx_hash,
        block_number=event.block_number,
        block_hash=event.block_hash,
        log_index=event.log_index,
    )


def history_epcis(history: ItemHistory, verdict: ItemVerdict, *, created_at: int) -> dict[str, Any]:
    """The history as an EPCIS 2.0 ``EPCISDocument`` (JSON-LD); ``created_at``: unix seconds. Serialized by
    :mod:`ledger_service.epcis.serialize`, as the EPCIS query interface's answers are."""
    epc = item_epc(history)
    timed = [(e.timestamp, chain_event(epc, chain_record(history.item_id, e))) for e in history.events]
    timed += [(scan.time, batched_event(epc, history, scan)) for scan in history.batched]
    return epcis_document(
        [event for _, event in sorted(timed, key=lambda pair: pair[0])],
        created_at=created_at,
        members={"ledger:itemId": history.item_id, "ledger:intact": verdict.intact},
    )
