"""The CBV event hash IDs of a large document, computed in worker processes part by part, are the ones GS1's
reference implementation gives the whole document in one process."""

from __future__ import annotations

from ledger_service.epcis import hashid
from tests.api.epcis_docs import aggregation, commissioning, document, event, new_epc, new_sscc

MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def large_document(n: int) -> dict[str, object]:
    """``n`` events of several kinds: commissionings, observations with an extension field, aggregations."""
    events: list[dict[str, object]] = []
    while len(events) < n:
        a, b = new_epc(), new_epc()
        events.append(commissioning([a, b], merchant=MERCHANT))
        events.append(event([a], minutes=len(events), **{"ledger:note": f"scan {len(events)}"}))
        events.append(aggregation(new_sscc(), [a, b], minutes=len(events)))
    return document(*events[:n])


def test_a_large_document_hashed_in_parts_gives_the_whole_documents_ids() -> None:
    count = hashid.POOL_MIN_EVENTS + 101
    doc = large_document(count)
    in_parts = list(hashid.hash_ids(doc, count))
    whole = list(hashid._hash_ids_here(doc, count))
    assert in_parts == whole
    assert len(set(whole)) == count and None not in whole
    assert all(h.startswith("ni:///sha-256;") for h in whole if h is not None)


def test_a_small_document_is_hashed_here() -> None:
    doc = large_document(3)
    assert list(hashid.hash_ids(doc, 3)) == list(hashid._hash_ids_here(doc, 3))
