"""Return requests (the API's ``return_requests``, in store/returns.py): one request holds an item at a
time, listing and filters, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store, returns
from ledger_service.store.returns import ItemBusyError, ReturnRequestRow
from tests.support.threads import together

ITEM = "0x" + "AB" * 32
CONSUMER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
MERCHANT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def request_row(request_id: str, **changes: object) -> ReturnRequestRow:
    values: dict[str, object] = {
        "id": request_id,
        "item_id": ITEM,
        "consumer": CONSUMER,
        "merchant": MERCHANT,
        "reason_code": "damaged",
        "comment": None,
        "outcome": "manual_review",
        "reasons": [{"code": "manual", "message": "the merchant reviews this one"}],
        "return_id": None,
        "tx_hash": None,
        "created_at": 1_000,
        "decided_at": None,
        "decided_by": None,
        "active_item": ITEM,
    }
    values.update(changes)
    return ReturnRequestRow(**values)  # type: ignore[arg-type]


def test_one_request_holds_an_item_at_a_time(store: Store) -> None:
    results = together(8, lambda i: returns.insert_return_request(store, request_row(f"rr_{i}")))
    busy = [r for r in results if isinstance(r, ItemBusyError)]
    assert results.count(None) == 1 and len(busy) == 7
    holder = returns.active_request_for_item(store, ITEM)
    assert holder is not None and busy[0].holder == holder.id and busy[0].item_id == ITEM.lower()
    assert (
        returns.record_decision(
            store,
            request_id=holder.id,
            outcome="reject",
            decided_at=2_000,
            decided_by=MERCHANT,
            expected_outcome="approve",
        )
        is False
    )  # compare-and-set: the stored outcome is manual_review
    assert returns.record_decision(
        store,
        request_id=holder.id,
        outcome="approve",
        decided_at=2_000,
        decided_by=MERCHANT,
        return_id="0x" + "CD" * 32,
        tx_hash="0x" + "EF" * 32,
        expected_outcome="manual_review",
    )
    decided = returns.return_request_by_id(store, holder.id)
    assert decided is not None
    assert (decided.outcome, decided.return_id, decided.active_item, decided.decided_by) == (
        "approve",
        "0x" + "cd" * 32,
        None,
        MERCHANT.lower(),
    )
    returns.insert_return_request(store, request_row("rr_next"))  # the slot is free again
    returns.release_item(store, request_id="rr_next")
    assert returns.active_request_for_item(store, ITEM) is None


def test_requests_are_listed_newest_first_with_filters_and_a_total(store: Store) -> None:
    for n in range(5):
        returns.insert_return_request(
            store,
            request_row(
                f"rr_{n}",
                item_id="0x" + f"{n:02x}" * 32,
                active_item=None,
                created_at=1_000 + n,
                outcome="reject" if n % 2 else "approve",
                reason_code="damaged" if n < 3 else "wrong_size",
            ),
        )
    rows, total = returns.list_return_requests(store, merchant=MERCHANT, limit=2, offset=1)
    assert total == 5 and [r.id for r in rows] == ["rr_3", "rr_2"]
    rows, total = returns.list_return_requests(store, outcomes=["approve"], reason_code="damaged")
    assert total == 2 and [r.id for r in rows] == ["rr_2", "rr_0"]
    _, total = returns.list_return_requests(store, consumer=CONSUMER.lower(), created_from=1_001, created_to=1_003)
    assert total == 2
    assert rows[0].reasons == [{"code": "manual", "message": "the merchant reviews this one"}]


def test_a_requests_documents_are_kept_in_their_order(store: Store) -> None:
    cids = ("QmZ" + "a" * 43, "QmY" + "b" * 43)
    returns.insert_return_request(store, request_row("rr_docs", documents=cids, active_item=None))
    returns.insert_return_request(store, request_row("rr_none", active_item=None))
    with_documents = returns.return_request_by_id(store, "rr_docs")
    without = returns.return_request_by_id(store, "rr_none")
    assert with_documents is not None and with_documents.documents == cids
    assert without is not None and without.documents == ()
