"""Index rows of captured events: built from a read event (:func:`claim_of`), or restored from what the chain
holds (:func:`restore_events`, used by the index rebuild and by the reconciliation of a capture whose process
died).

Invariant of :func:`restore_events`: an item event naming a document is matched to at most one event of that
document, the document's events in order to the item's events in chain order (a capture sends them so).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ledger_service.documents.cid import Cid
from ledger_service.epcis.document import EpcisEvent, item_id_of
from ledger_service.store import epcis_events
from ledger_service.store.epcis_events import DocumentedRow, EventClaim, Recorded
from ledger_service.store.handle import Store


def claim_of(event: EpcisEvent, cid: Cid, namespaces: str) -> EventClaim:
    """The index row of a captured event (its document's ``cid``, the document's prefixes as JSON)."""
    return EventClaim(
        hash_id=event.hash_id,
        event_id=event.event_id,
        event_index=event.index,
        event_type=event.event_type,
        action=event.action,
        event_time=event.event_time_ms,
        time_zone_offset=event.time_zone_offset,
        biz_step=event.biz_step_text,
        disposition=event.disposition_text,
        read_point=event.read_point,
        document=cid.hex_digest,
        body=json.dumps(event.body, ensure_ascii=False, separators=(",", ":")),
        namespaces=namespaces,
        epcs=tuple((item_id_of(epc), role, epc) for role, epc in event.epcs),
        biz_transactions=event.biz_transactions,
    )


@dataclass(frozen=True, slots=True)
class Restored:
    """An event of a document found on-chain and marked recorded."""

    event: EpcisEvent
    missing: tuple[str, ...]
    """Item ids the event names that have no such item event (an event half on-chain)."""


def restore_events(
    store: Store,
    *,
    events: Sequence[EpcisEvent],
    cid: Cid,
    namespaces: str,
    rows: Sequence[DocumentedRow],
    capture_id: str,
) -> list[Restored]:
    """Matches the document's ``events``, in order, to ``rows`` (the indexed item events naming it that no
    captured event accounts for, in chain order), item by item, and records each event that got one as
    captured by ``capture_id``. An event whose hash ID is already captured takes no row: it was a duplicate
    when this document was captured, or it is recorded with its own rows."""
    queues: dict[str, list[DocumentedRow]] = {}
    for row in rows:
        queues.setdefault(row.item_id, []).append(row)
    known = epcis_events.known_hash_ids(store, [e.hash_id for e in events])
    restored: list[Restored] = []
    for event in events:
        if event.hash_id in known:
            continue
        known.add(event.hash_id)
        items = [item_id for item_id, _ in event.items()]
        written = [queues[item_id].pop(0) for item_id in items if queues.get(item_id)]
        if not written:
            continue
        claimed = epcis_events.claim_events(
            store, capture_id=capture_id, actor=written[0].actor, claims=[claim_of(event, cid, namespaces)]
        )
        key = claimed.get(event.hash_id)
        if key is None:  # restored meanwhile by another process
            continue
        last = max(written, key=lambda r: r.block_number)
        epcis_events.mark_recorded(
            store,
            [Recorded(key, last.tx_hash, last.block_number, {r.item_id: r.seq for r in written})],
            record_time_ms=last.timestamp * 1000,
        )
        done = {r.item_id for r in written}
        restored.append(Restored(event, tuple(i for i in items if i not in done)))
    return restored
