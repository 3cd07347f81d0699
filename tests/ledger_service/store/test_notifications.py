"""The outbox: written with the index in one transaction, one stable id per notification, consistent through
reorgs; the window scan; dispatch into deliveries (one per target and id) and their claims."""

from __future__ import annotations

import pytest

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.notifications import (
    RETURN_APPROVED,
    RETURN_CLOSED,
    RETURN_DELIVERED,
    RETURN_IN_TRANSIT,
    RETURN_INSPECTED,
    RETURN_LABEL_READY,
    RETURN_REFUND_PAID,
    SALE_WINDOW_CLOSING,
    notification_id,
)
from ledger_service.store import Store
from ledger_service.store.notifications import (
    DEAD,
    DELIVERED,
    EMAIL_TARGET,
    PENDING,
    Outcome,
    WebhookEndpoint,
    claim_due,
    deliveries_of,
    dispatch,
    insert_endpoint,
    notifications_of_return,
    outbox,
    record_outcomes,
    replay,
    scan_return_windows,
    set_contact,
)
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, headers_upto, upto

MERCHANT = addr(2)


def _chain() -> tuple[ChainBuilder, str, str]:
    """Block 1: a policy, an item sold and delivered, its return authorized; block 2: the parcel scanned (fast
    refund paid); block 3: received and accepted."""
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1, ship_by_days=10)
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    sale = chain.sale(item)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    rid = chain.authorize(item, sale, ship_by_days=10)
    chain.next_block(seconds=DAY)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.settle(rid, 95, 5)
    chain.next_block(seconds=DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    return chain, item, rid


def _apply(store: Store, chain: ChainBuilder, start: int, end: int) -> None:
    store.apply(
        events=[ev for ev in chain.events if start < ev.pos.block_number <= end],
        headers=[x for x in chain.headers if start < x.number <= end],
        checkpoint=chain.ref(end),
        prune_below=0,
    )


def test_every_step_of_a_return_writes_one_notification_with_a_stable_id(store: Store) -> None:
    chain, _, rid = _chain()
    _apply(store, chain, 0, chain.number)
    rows = outbox(store)
    assert [r.type for r in rows] == [
        RETURN_APPROVED,
        RETURN_LABEL_READY,
        RETURN_IN_TRANSIT,
        RETURN_REFUND_PAID,
        RETURN_DELIVERED,
        RETURN_INSPECTED,
        RETURN_CLOSED,
    ]
    assert [r.id for r in rows] == [notification_id(r.type, rid) for r in rows]
    assert {r.merchant for r in rows} == {MERCHANT}
    refund = rows[3]
    assert refund.data["amount"] == "95" and refund.data["fee"] == "5"
    assert rows[5].data["state"] == "accepted"
    assert [r.seq for r in notifications_of_return(store, rid, after=rows[2].seq)] == [r.seq for r in rows[3:]]


def test_a_batch_that_fails_leaves_no_notification(store: Store) -> None:
    chain, _, _ = _chain()

    def boom() -> None:
        raise RuntimeError("crash before the commit")

    with pytest.raises(RuntimeError):
        store.apply(
            events=upto(chain.events, chain.number),
            headers=headers_upto(chain.headers, chain.number),
            checkpoint=chain.ref(),
            prune_below=0,
            before_commit=boom,
        )
    assert outbox(store) == []


def test_a_reorg_rolls_the_outbox_back_and_re_applying_dispatches_nothing_twice(store: Store) -> None:
    chain, _, rid = _chain()
    endpoint = WebhookEndpoint(
        "wh_1", MERCHANT, "http://127.0.0.1:9/hook", (RETURN_IN_TRANSIT, RETURN_CLOSED), "s", 0, None
    )
    insert_endpoint(store, endpoint)
    _apply(store, chain, 0, chain.number)
    assert dispatch(store, now=100, retry_for_s=DAY, render=lambda n: n.id, email_types=frozenset()) == 7
    before = {d.notification_id for d in deliveries_of(store, "wh_1")}
    assert before == {notification_id(RETURN_IN_TRANSIT, rid), notification_id(RETURN_CLOSED, rid)}

    store.rollback_to(chain.ref(1))
    assert [r.type for r in outbox(store)] == [RETURN_APPROVED, RETURN_LABEL_READY]
    _apply(store, chain, 1, chain.number)  # the same transactions in the new branch
    again = outbox(store)
    assert len(again) == 7 and {r.id for r in again} == {notification_id(r.type, rid) for r in again}
    assert dispatch(store, now=200, retry_for_s=DAY, render=lambda n: n.id, email_types=frozenset()) == 5
    assert {d.notification_id for d in deliveries_of(store, "wh_1")} == before  # no second delivery


def test_a_rejected_duplicate_notification_keeps_the_first(store: Store) -> None:
    """An emitter that repeats a state (the contracts never do) does not make the index refuse the batch."""
    chain, _, rid = _chain()
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    _apply(store, chain, 0, chain.number)
    assert [r.type for r in outbox(store)].count(RETURN_CLOSED) == 1


def test_the_window_scan_notices_a_closing_window_once(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)  # window_days 30 in the builder's policy
    item = chain.register("urn:epc:id:sgtin:0614141.107346.9")
    sale = chain.sale(item)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    delivered = chain.time
    _apply(store, chain, 0, chain.number)
    window = 30 * DAY
    assert scan_return_windows(store, now=delivered + window - 4 * DAY, notice_s=3 * DAY) == 0
    assert scan_return_windows(store, now=delivered + window - 3 * DAY, notice_s=3 * DAY) == 1
    assert scan_return_windows(store, now=delivered + window - 2 * DAY, notice_s=3 * DAY) == 0  # idempotent
    assert scan_return_windows(store, now=delivered + window + 1, notice_s=3 * DAY) == 0
    (row,) = outbox(store)
    assert (row.type, row.id) == (SALE_WINDOW_CLOSING, notification_id(SALE_WINDOW_CLOSING, f"{item}:{sale}"))
    assert row.data["closes_at"] == delivered + window


def test_claims_lease_deliveries_cap_each_target_and_retry_then_dead_letter(store: Store) -> None:
    chain, item, _ = _chain()
    for n in range(2):
        endpoint = WebhookEndpoint(
            f"wh_{n}", MERCHANT, "http://127.0.0.1:9/", (RETURN_CLOSED, RETURN_APPROVED), "s", 0, None
        )
        insert_endpoint(store, endpoint)
    set_contact(store, item_id=item, sale_seq=1, email="a@example.com", lang="en", now=0)
    _apply(store, chain, 0, chain.number)
    dispatch(store, now=10, retry_for_s=100, render=lambda n: n.id, email_types=frozenset({RETURN_CLOSED}))
    claimed = claim_due(store, now=10, limit=10, per_target=1, lease_s=1000)
    assert sorted(d.target for d in claimed) == sorted(["wh_0", "wh_1", EMAIL_TARGET])
    assert claim_due(store, now=10, limit=10, per_target=5, lease_s=1000) != []  # the rest of wh_0 and wh_1
    assert claim_due(store, now=20, limit=10, per_target=5, lease_s=1000) == []  # all leased
    first = claimed[0]
    record_outcomes(store, [Outcome(first.id, False, 500, "HTTP 500", 50)], now=20)
    assert [d.id for d in claim_due(store, now=50, limit=10, per_target=5, lease_s=1000)] == [first.id]
    record_outcomes(store, [Outcome(first.id, False, None, "refused", None)], now=60)
    dead = deliveries_of(store, first.target, state=DEAD)
    assert [(d.id, d.attempts, d.last_error) for d in dead] == [(first.id, 2, "refused")]
    assert replay(store, first.target, now=70, retry_for_s=100) == 1
    (again,) = claim_due(store, now=70, limit=10, per_target=5, lease_s=1000)
    assert (again.id, again.notification_id, again.body) == (first.id, first.notification_id, first.body)
    record_outcomes(store, [Outcome(again.id, True, 204, None, None)], now=71)
    assert deliveries_of(store, first.target, state=DELIVERED)[0].id == first.id
    assert all(d.state != PENDING or d.id != first.id for d in deliveries_of(store, first.target))


def test_a_request_and_its_rejection_write_their_notifications_with_the_request(store: Store) -> None:
    from ledger_service.core.notifications import RETURN_REJECTED, RETURN_REQUESTED
    from ledger_service.store.returns import ReturnRequestRow, insert_return_request, record_decision

    chain, item, _ = _chain()
    _apply(store, chain, 0, chain.number)
    before = len(outbox(store))
    row = ReturnRequestRow(
        id="rr_" + "ab" * 16,
        item_id=item,
        consumer=addr(6),
        merchant=MERCHANT,
        reason_code="damaged",
        comment=None,
        outcome="manual_review",
        reasons=[],
        return_id=None,
        tx_hash=None,
        created_at=1_000,
        decided_at=None,
        decided_by=None,
        active_item=item,
    )
    insert_return_request(store, row)
    assert record_decision(store, request_id=row.id, outcome="reject", decided_at=2_000, decided_by=MERCHANT)
    added = outbox(store)[before:]
    assert [(n.type, n.id, n.return_id, n.sale_seq) for n in added] == [
        (RETURN_REQUESTED, notification_id(RETURN_REQUESTED, row.id), None, 1),
        (RETURN_REJECTED, notification_id(RETURN_REJECTED, row.id), None, 1),
    ]
    assert added[1].data == {"request_id": row.id, "reason_code": "damaged", "outcome": "reject"}
