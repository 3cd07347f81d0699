"""The query side of EPCIS: pages of events, each as EPCIS 2.0 JSON-LD with its ledger proof.

A captured event is answered as the partner sent it, read from the captured document in the document store
(the digest the chain holds; the event at its position there), with the proofs of the ItemEventRecorded rows
the indexer stored for it; an event
the chain holds without a capture document (written by the escrow, or outside capture) is answered from
``item_events`` alone. Both go through :mod:`ledger_service.epcis.serialize`, as the history export does.
A captured event whose document is missing or damaged in the store is answered from its chain rows, marked
``ledger:documentUnavailable``: the chain's facts are never withheld because a copy is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ledger_service.documents.cid import Cid
from ledger_service.documents.interface import DocumentStore
from ledger_service.epcis.serialize import ZERO_HASH, ChainRecord, captured_event, chain_event, namespaces_of
from ledger_service.errors import LedgerError
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


def chain_record(row: ChainRow) -> ChainRecord:
    """The row's record with its document's CID."""
    document = row.record.document
    return replace(row.record, document_cid=None if document == ZERO_HASH else Cid.from_digest(document).v0)


def _read_document(documents: DocumentStore, digest: str) -> dict[str, Any] | None:
    try:
        found = json.loads(documents.read(Cid.from_digest(digest)))
    except (LedgerError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def render(
    documents: DocumentStore,
    found: FoundEvent,
    namespaces: list[dict[str, str]],
    cache: dict[str, dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """The JSON-LD of one found event (several chain events when a captured one's document is unavailable);
    its document's own prefixes are added to ``namespaces``. ``cache``: documents already read, by digest (the
    events of one capture share theirs)."""
    records = [chain_record(r) for r in found.rows]
    if found.hash_id is None:
        return [chain_event(found.rows[0].epc, records[0])]
    digest = found.document or ZERO_HASH
    cache = {} if cache is None else cache
    if digest not in cache:
        cache[digest] = _read_document(documents, digest)
        if cache[digest] is not None:
            namespaces.extend(namespaces_of(cache[digest] or {}))
    document = cache[digest]
    try:
        body = document["epcisBody"]["eventList"][found.event_index or 0] if document is not None else None
    except (KeyError, IndexError, TypeError):
        body = None
    if document is None or not isinstance(body, dict):
        return [
            {**chain_event(row.epc, record), "ledger:hashID": found.hash_id, "ledger:documentUnavailable": True}
            for row, record in zip(found.rows, records, strict=True)
        ]
    event = captured_event(body, hash_id=found.hash_id, record_time_ms=found.record_time_ms, records=records)
    event["ledger:eventIndex"] = found.event_index
    return [event]


def find_events(
    *, store: Store, documents: DocumentStore, query: EventQuery, after: PageKey | None, per_page: int
) -> EventPage:
    """One page of the events matching ``query`` (see :func:`ledger_service.store.epcis_events.query_events`)."""
    found, next_key = epcis_events.query_events(store, query, after=after, limit=per_page)
    namespaces: list[dict[str, str]] = []
    cache: dict[str, dict[str, Any] | None] = {}
    events = [event for entry in found for event in render(documents, entry, namespaces, cache)]
    return EventPage(events=events, namespaces=namespaces, next_key=next_key)


def find_event(
    *, store: Store, documents: DocumentStore, hash_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | None:
    """A captured event by its hash ID: (its JSON-LD, the prefixes it uses), or None."""
    found = epcis_events.event_by_hash_id(store, hash_id)
    if found is None or not found.rows:
        return None
    namespaces: list[dict[str, str]] = []
    return render(documents, found, namespaces), namespaces
