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

from ledger_service.documents.cid import Cid
from ledger_service.epcis.serialize import ZERO_HASH, ChainRecord, captured_event, chain_event, parse_event_uuid
from ledger_service.store import epcis_events
from ledger_service.store.epcis_events import ChainRow, EventQuery, FoundEvent, PageKey
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


def render(found: FoundEvent, namespaces: list[dict[str, str]]) -> dict[str, Any]:
    """The JSON-LD of one found event; a captured event's document prefixes are added to ``namespaces``."""
    records = [chain_record(r) for r in found.rows]
    if found.hash_id is None or found.body is None:
        return chain_event(found.rows[0].epc, records[0])
    namespaces.extend(json.loads(found.namespaces or "[]"))
    event = captured_event(
        json.loads(found.body), hash_id=found.hash_id, record_time_ms=found.record_time_ms, records=records
    )
    event["ledger:eventIndex"] = found.event_index
    return event


def find_events(*, store: Store, query: EventQuery, after: PageKey | None, per_page: int) -> EventPage:
    """One page of the events matching ``query`` (see :func:`ledger_service.store.epcis_events.query_events`)."""
    found, next_key = epcis_events.query_events(store, query, after=after, limit=per_page)
    namespaces: list[dict[str, str]] = []
    events = [render(entry, namespaces) for entry in found]
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
    if found is None or not found.rows:
        return None
    namespaces: list[dict[str, str]] = []
    return [render(found, namespaces)], namespaces
