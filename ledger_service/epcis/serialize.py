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
  transaction (typed ``rma`` / ``po`` when known), ``eventID`` a UUID (version 8) of its position on the chain
  and its eventHash (:func:`event_uuid`), by which the query interface finds it.

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

from ledger_service.core.batch_document import LEAF_ENCODING
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


_BLOCK_BITS, _LOG_BITS, _HASH_BITS = 48, 20, 54
"""A chain event's UUID (version 8, RFC 9562's custom layout) holds, in its 122 free bits: the block number,
the log index, and the first bits of the eventHash."""


@dataclass(frozen=True, slots=True)
class ChainEventId:
    """What a chain event's ``urn:uuid:`` names: its log's position, and the leading bits of its eventHash
    (so that an ID names one event, not whatever another branch of the chain put at that position)."""

    block_number: int
    log_index: int
    hash_bits: int

    def matches(self, event_hash: str) -> bool:
        return int(event_hash[2:], 16) >> (256 - _HASH_BITS) == self.hash_bits


def event_uuid(block_number: int, log_index: int, event_hash: str) -> str:
    """A chain event's ``eventID``: a UUIDv8 holding its position (block, log index) and the first 54 bits of
    its eventHash. The index finds it by its primary key, with nothing stored for it (see ChainEventId)."""
    if not (0 <= block_number < 1 << _BLOCK_BITS and 0 <= log_index < 1 << _LOG_BITS):
        raise ValueError(f"no chain event ID for block {block_number}, log {log_index}")
    hash_bits = int(event_hash[2:], 16) >> (256 - _HASH_BITS)
    low = (log_index << _HASH_BITS) | hash_bits  # 74 bits: 12 after the version, 62 after the variant
    value = (block_number << 80) | (8 << 76) | ((low >> 62) << 64) | (0b10 << 62) | (low & ((1 << 62) - 1))
    return f"urn:uuid:{uuid.UUID(int=value)}"


def parse_event_uuid(event_id: str) -> ChainEventId | None:
    """The position and hash bits of a chain event's ``urn:uuid:`` (None: not one of ours)."""
    try:
        value = uuid.UUID(event_id.removeprefix("urn:uuid:")).int
    except ValueError:
        return None
    if not event_id.startswith("urn:uuid:") or (value >> 76) & 0xF != 8 or (value >> 62) & 0b11 != 0b10:
        return None
    low = (((value >> 64) & 0xFFF) << 62) | (value & ((1 << 62) - 1))
    return ChainEventId(value >> 80, low >> _HASH_BITS, low & ((1 << _HASH_BITS) - 1))


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


@dataclass(frozen=True, slots=True)
class BatchProof:
    """What proves one batched scan: its batch (the ``BatchAnchored`` event), its leaf and Merkle proof."""

    batch_id: str
    """``<anchor block>-<anchor log index>``."""
    seq: int
    prev_hash: str
    submitter: str
    leaf_index: int
    root: str | None
    anchor_tx: str | None
    anchor_block: int
    anchor_log_index: int
    document_cid: str | None
    """The batch document's CIDv0."""
    leaf_values: list[str] | None
    """The leaf's values in ``StandardMerkleTree`` form (None: the stored fields are no scan's)."""
    leaf: str
    proof: tuple[str, ...]


def batch_member(found: BatchProof) -> dict[str, Any]:
    """The ``ledger:batch`` member of a batched scan's event: checked with ``StandardMerkleTree.verify(root,
    leafEncoding, leafValues, proof)`` and the anchor's event, or on-chain with ``BatchAnchor.verifyScan``."""
    return {
        "batchId": found.batch_id,
        "seq": found.seq,
        "prevHash": found.prev_hash,
        "submitter": found.submitter,
        "leafIndex": found.leaf_index,
        "root": found.root,
        "anchorTx": found.anchor_tx,
        "anchorBlock": found.anchor_block,
        "anchorLogIndex": found.anchor_log_index,
        "batchDocument": found.document_cid,
        "leafEncoding": list(LEAF_ENCODING),
        "leafValues": found.leaf_values,
        "leaf": found.leaf,
        "proof": list(found.proof),
    }


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
        "eventID": event_uuid(record.block_number, record.log_index, record.event_hash),
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
