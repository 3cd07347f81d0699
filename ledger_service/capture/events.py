"""The query side of EPCIS: pages of events, each as EPCIS 2.0 JSON-LD with its ledger proof.

A captured event is answered as the partner sent it, from the index's copy of its JSON (the captured
document in the document store, whose digest the chain holds, is the record: ``ledger:document`` and
``ledger:eventIndex`` say where to check it), with the proofs of the ItemEventRecorded rows the indexer
stored for it; an event the chain holds without a capture document (written by the escrow, or outside
capture) is answered from ``item_events`` alone. Both go through :mod:`ledger_service.epcis.serialize`, as
the history export does. No answer reads the document store: a page of events costs index reads only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from ledger_service.core.batch_document import BatchedScan, leaf_json_values
from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.merkle import BatchTrees
from ledger_service.documents.cid import Cid
from ledger_service.epcis.document import biz_step_of, disposition_of
from ledger_service.epcis.serialize import (
    ZERO_HASH,
    BatchProof,
    ChainRecord,
    batch_member,
    captured_event,
    chain_event,
    parse_event_uuid,
)
from ledger_service.store import epcis_events
from ledger_service.store.epcis_events import BatchedFound, ChainRow, EventQuery, FoundEvent, PageKey
from ledger_service.store.handle import Store


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[dict[str, Any]]
    namespaces: list[dict[str, str]]
    """The partners' own prefixes the events use (for the answer's ``@context``)."""
    next_key: PageKey | None
    """Where the next page starts (None: this is the last)."""


@lru_cache(maxsize=4096)
def _cid(digest: str) -> str:
    """A document digest's CIDv0 (remembered: a page's captured events mostly share their document)."""
    return Cid.from_digest(digest).v0


def chain_record(row: ChainRow) -> ChainRecord:
    """The row's record with its document's CID."""
    document = row.record.document
    return replace(row.record, document_cid=None if document == ZERO_HASH else _cid(document))


def render(found: FoundEvent, namespaces: list[dict[str, str]]) -> dict[str, Any] | None:
    """The JSON-LD of one found event; a captured event's document prefixes are added to ``namespaces``. None
    for a batched captured event not all of whose scans are applied yet."""
    if found.hash_id is None or found.body is None:
        return chain_event(found.rows[0].epc, chain_record(found.rows[0]))
    body = json.loads(found.body)
    if found.batched is not None:
        proofs = _batch_proofs(body, found.batched)
        if proofs is None:
            return None
        record_time = max(anchored for anchored, _ in proofs) * 1000
        event = captured_event(body, hash_id=found.hash_id, record_time_ms=record_time, records=())
        members = [member for _, member in proofs]
        if len(members) == 1:
            event.update(members[0])
        else:
            event["ledger:proofs"] = members
    else:
        records = [chain_record(r) for r in found.rows]
        event = captured_event(body, hash_id=found.hash_id, record_time_ms=found.record_time_ms, records=records)
    namespaces.extend(json.loads(found.namespaces or "[]"))
    event["ledger:eventIndex"] = found.event_index
    return event


def _batch_proofs(body: dict[str, Any], batched: BatchedFound) -> list[tuple[int, dict[str, Any]]] | None:
    """For a batched captured event: per EPC, (its anchor's block time, ``ledger:itemId`` and ``ledger:batch``:
    the scan's batch, anchor and Merkle proof, as the history export gives them). A candidate scan is the
    event's when its step, disposition and read point are the event's too; None unless every EPC has one (the
    event is served once all its scans are applied)."""
    step, disposition = biz_step_of(str(body.get("bizStep", ""))), disposition_of(str(body.get("disposition", "")))
    read_point = str((body.get("readPoint") or {}).get("id", "")).removeprefix("urn:epc:id:sgln:")
    chosen = [
        (epc, row)
        for epc, row in batched.scans
        if step is not None
        and disposition is not None
        and (row.biz_step, row.disposition, row.read_point) == (int(step), int(disposition), read_point)
    ]
    if not batched.epcs or {epc for epc, _ in chosen} != set(batched.epcs):
        return None
    trees = BatchTrees(batched.leaves)
    out = []
    for epc, row in chosen:
        at = (row.block_number, row.log_index)
        anchor = batched.anchors.get(at)
        proof = trees.proof(at, row.leaf_index)
        scan = BatchedScan(
            item=epc,
            seq=row.seq,
            prev_hash=bytes.fromhex(row.prev_hash[2:]),
            biz_step=BizStep(row.biz_step),
            disposition=Disposition(row.disposition),
            read_point=row.read_point,
            time=row.time,
            document=bytes.fromhex(row.document[2:]),
            biz_transaction=bytes.fromhex(row.biz_transaction[2:]),
        )
        member = BatchProof(
            batch_id=f"{row.block_number}-{row.log_index}",
            seq=row.seq,
            prev_hash=row.prev_hash,
            submitter=row.submitter,
            leaf_index=row.leaf_index,
            root=None if anchor is None else anchor.root,
            anchor_tx=None if anchor is None else anchor.tx_hash,
            anchor_block=row.block_number,
            anchor_log_index=row.log_index,
            document_cid=None if anchor is None else _cid(anchor.document_digest),
            leaf_values=leaf_json_values(scan, bytes.fromhex(row.submitter[2:])),
            leaf=row.leaf_hash,
            proof=proof,
        )
        anchored = 0 if anchor is None else anchor.anchored_at
        out.append((anchored, {"ledger:itemId": row.item_id, "ledger:batch": batch_member(member)}))
    return out


def find_events(*, store: Store, query: EventQuery, after: PageKey | None, per_page: int) -> EventPage:
    """One page of the events matching ``query`` (see :func:`ledger_service.store.epcis_events.query_events`)."""
    found, next_key = epcis_events.query_events(store, query, after=after, limit=per_page)
    namespaces: list[dict[str, str]] = []
    events = [event for entry in found if (event := render(entry, namespaces)) is not None]
    return EventPage(events=events, namespaces=namespaces, next_key=next_key)


def find_event(*, store: Store, event_id: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | None:
    """An event by its ID: a captured event's CBV hash ID, or the ``urn:uuid:`` of an event the chain holds
    (:func:`ledger_service.epcis.serialize.event_uuid`, as the history export and the query give it; a captured
    event is answered as captured). (Its JSON-LD, the prefixes it uses), or None."""
    chain_id = parse_event_uuid(event_id)
    if chain_id is not None:
        found = epcis_events.event_at(
            store, block_number=chain_id.block_number, log_index=chain_id.log_index, event_hash_ok=chain_id.matches
        )
    else:
        found = epcis_events.event_by_hash_id(store, event_id)
    if found is None or not (found.rows or found.batched):
        return None
    namespaces: list[dict[str, str]] = []
    event = render(found, namespaces)
    return None if event is None else ([event], namespaces)
