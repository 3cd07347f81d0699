"""Events as EPCIS 2.0 JSON-LD, with the chain's proof of each under the ``ledger:`` namespace: one serializer
for the item history's EPCIS export and the query interface's answers.

Two kinds of event come out:

- a *captured* event (:func:`captured_event`) is the event as the partner sent it (every field, extensions
  and sensor data included, from its document in the document store), with ``eventID`` (the partner's, else
  its CBV hash ID), ``recordTime`` (when it was on-chain), ``ledger:hashID``, and the proof of the
  ItemEventRecorded it wrote on each item;
- a *chain* event (:func:`chain_event`) is one the chain holds without a capture document (written by the
  escrow, by registration outside capture, by a script): an ``ObjectEvent`` built from the on-chain fields:
  ``eventTime`` the block time, ``action`` ADD for commissioning, DELETE for destroying and decommissioning,
  OBSERVE otherwise, CBV 2.0 ``bizStep`` / ``disposition``, ``readPoint`` as an SGLN URN, the business
  transaction (typed ``rma`` / ``po`` when known), ``eventID`` a name-based UUID of its eventHash.

The proof of an ItemEventRecorded: ``ledger:itemId``, ``ledger:seq``, ``ledger:actor``, ``ledger:eventHash``,
``ledger:prevHash``, ``ledger:txHash``, ``ledger:blockNumber``, ``ledger:blockHash``, ``ledger:logIndex`` and
``ledger:document`` (the CID of its document: for a captured event, the captured document, where
``ledger:eventIndex`` is its position). An event on one item carries them as members; an event on
several items (an aggregation's children) carries ``ledger:proofs``, one object per item.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger_service.core.codes import BizStep, Disposition, decode_location

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
LEDGER_NS = "https://returns-ledger.example/epcis/"
"""The extension namespace (prefix ``ledger:``) of the chain data in EPCIS documents."""
ZERO_HASH = "0x" + "00" * 32
_ADD = frozenset({BizStep.COMMISSIONING})
_DELETE = frozenset({BizStep.DESTROYING, BizStep.DECOMMISSIONING})


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One ItemEventRecorded as the index holds it: the proof of an event on one item."""

    item_id: str
    seq: int
    biz_step: int
    disposition: int
    actor: str
    location: str
    document: str
    document_cid: str | None
    """The CIDv0 of ``document`` (None when zero)."""
    biz_transaction: str
    biz_transaction_type: str | None
    timestamp: int
    prev_hash: str
    event_hash: str
    tx_hash: str
    block_number: int
    block_hash: str | None
    log_index: int


def iso_seconds(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_uuid(event_hash: str) -> str:
    """A stable ``urn:uuid:`` for a chain event: the name-based (v5) UUID of its eventHash in our namespace."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{LEDGER_NS}event/{event_hash.lower()}')}"


def proof(record: ChainRecord) -> dict[str, Any]:
    """The ``ledger:`` members proving one ItemEventRecorded."""
    out: dict[str, Any] = {
        "ledger:itemId": record.item_id,
        "ledger:seq": record.seq,
        "ledger:actor": record.actor,
        "ledger:eventHash": record.event_hash,
        "ledger:prevHash": record.prev_hash,
        "ledger:txHash": record.tx_hash,
        "ledger:blockNumber": record.block_number,
    }
    if record.block_hash is not None:
        out["ledger:blockHash"] = record.block_hash
    out["ledger:logIndex"] = record.log_index
    if record.document_cid is not None:
        out["ledger:document"] = record.document_cid
    return out


def _with_proofs(out: dict[str, Any], records: Sequence[ChainRecord]) -> dict[str, Any]:
    if len(records) == 1:
        out.update(proof(records[0]))
    elif records:
        out["ledger:proofs"] = [proof(r) for r in records]
    return out


def _name(code: int, kind: str, names: Any) -> str:
    try:
        return str(names(code).cbv)
    except ValueError:
        return f"{LEDGER_NS}{kind}/{code}"


def chain_event(epc: str, record: ChainRecord) -> dict[str, Any]:
    """An event the chain holds without a capture document (see the module docstring)."""
    step = record.biz_step
    action = "ADD" if step in _ADD else "DELETE" if step in _DELETE else "OBSERVE"
    out: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": iso_seconds(record.timestamp),
        "eventTimeZoneOffset": "+00:00",
        "eventID": event_uuid(record.event_hash),
        "epcList": [epc],
        "action": action,
        "bizStep": _name(step, "bizStep", BizStep),
        "disposition": _name(record.disposition, "disposition", Disposition),
    }
    try:
        read_point = decode_location(bytes.fromhex(record.location.removeprefix("0x")))
    except ValueError:
        read_point = ""
    if read_point:
        out["readPoint"] = {"id": f"urn:epc:id:sgln:{read_point}"}
    if record.biz_transaction != ZERO_HASH:
        transaction: dict[str, str] = {"bizTransaction": f"{LEDGER_NS}bizTransaction/{record.biz_transaction}"}
        if record.biz_transaction_type is not None:
            transaction = {"type": record.biz_transaction_type, **transaction}
        out["bizTransactionList"] = [transaction]
    return _with_proofs(out, [record])


def captured_event(
    body: Mapping[str, Any], *, hash_id: str, record_time_ms: int | None, records: Sequence[ChainRecord]
) -> dict[str, Any]:
    """A captured event as sent, with its hash ID, record time and proofs (see the module docstring)."""
    out = dict(body)
    out.setdefault("eventID", hash_id)
    if record_time_ms is not None:
        out["recordTime"] = iso_millis(record_time_ms)
    out["ledger:hashID"] = hash_id
    return _with_proofs(out, records)


def context(namespaces: Iterable[Mapping[str, str]] = ()) -> list[Any]:
    """The ``@context`` of an answer: EPCIS 2.0's, ours, and the partners' own prefixes (first one wins)."""
    merged: dict[str, str] = {"ledger": LEDGER_NS}
    for entry in namespaces:
        for prefix, uri in entry.items():
            merged.setdefault(prefix, uri)
    return [EPCIS_CONTEXT, merged]


def epcis_document(
    events: Sequence[dict[str, Any]],
    *,
    created_at: int,
    members: Mapping[str, Any] | None = None,
    namespaces: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """An ``EPCISDocument`` holding ``events`` (``members``: extra top-level ``ledger:`` members)."""
    return {
        "@context": context(namespaces),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_seconds(created_at),
        **(members or {}),
        "epcisBody": {"eventList": list(events)},
    }


def query_document(
    events: Sequence[dict[str, Any]], *, created_at: int, namespaces: Iterable[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """An ``EPCISQueryDocument`` answering a SimpleEventQuery with ``events``."""
    return {
        "@context": context(namespaces),
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_seconds(created_at),
        "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": list(events)}}},
    }


def namespaces_of(document: Mapping[str, Any]) -> list[dict[str, str]]:
    """The inline prefix definitions of a document's ``@context`` (the strings, remote contexts, left out)."""
    contexts = document.get("@context")
    found: list[dict[str, str]] = []
    for entry in contexts if isinstance(contexts, list) else [contexts]:
        if isinstance(entry, dict):
            found.append({str(k): str(v) for k, v in entry.items() if isinstance(v, str)})
    return found
