"""Rebuilding the index's EPCIS rows from the chain and the document store (the index lost, or a new one).

Every captured event wrote ItemEventRecorded rows whose ``document`` is the digest of the document it was
captured in; the indexer restores those rows from the chain. :func:`rebuild` reads each such document from
the document store, reads it again as capture did (:func:`~ledger_service.epcis.document.read_document`:
hash IDs, EPCs, times, transactions) and matches its events, in document order, to the item events naming
it, item by item in chain order: an event whose items have no such row left was a duplicate when it was
captured (recorded from an earlier document) and gets none. The restored rows are ``recorded``, with the
transaction and seqs of their item events and the block time as record time; capture jobs are not restored.
A digest whose document the store lacks, or that is not an EPCIS document (a policy, an inspection report),
is counted and left alone. Running it twice restores nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ledger_service.capture.restore import restore_events
from ledger_service.documents.cid import Cid
from ledger_service.documents.interface import DocumentStore
from ledger_service.epcis.document import parse_json, read_document
from ledger_service.epcis.errors import DocumentRefusedError
from ledger_service.epcis.serialize import namespaces_of
from ledger_service.errors import LedgerError
from ledger_service.store import epcis_events
from ledger_service.store.handle import Store

REBUILT = "rebuilt"
"""The capture id of restored rows (their jobs are not restored)."""


@dataclass
class RebuildReport:
    documents: int = 0
    events: int = 0
    missing: int = 0
    """Digests the document store does not hold."""
    not_epcis: int = 0
    """Digests of documents that are not EPCIS documents."""


def rebuild(*, store: Store, documents: DocumentStore) -> RebuildReport:
    """See the module docstring."""
    report = RebuildReport()
    for digest, rows in epcis_events.unaccounted_documents(store).items():
        cid = Cid.from_digest(digest)
        try:
            raw = documents.read(cid)
        except LedgerError:
            report.missing += 1
            continue
        try:
            source = parse_json(raw)
            events = read_document(source)
        except DocumentRefusedError:
            report.not_epcis += 1
            continue
        report.documents += 1
        restored = restore_events(
            store, events=events, cid=cid, namespaces=json.dumps(namespaces_of(source)), rows=rows, capture_id=REBUILT
        )
        report.events += len(restored)
    return report
