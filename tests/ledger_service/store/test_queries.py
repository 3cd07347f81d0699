"""Read queries over the index answer what the returns workflow asks, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store import Store, api_queries
from ledger_service.store import queries as q
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr

MERCHANT, OTHER_MERCHANT, CONSUMER, OTHER_CONSUMER = addr(2), addr(9), addr(6), addr(7)


def _apply(store: Store, chain: ChainBuilder) -> None:
    """Applies whatever the chain has above the store's checkpoint."""
    current = store.checkpoint()
    since = -1 if current is None else current.number
    store.apply(
        events=[ev for ev in chain.events if ev.pos.block_number > since],
        headers=[x for x in chain.headers if x.number > since],
        checkpoint=chain.ref(),
        prune_below=0,
    )


def _sold_and_delivered(chain: ChainBuilder, uri: str, *, consumer: str = CONSUMER) -> str:
    item = chain.register(uri, merchant=MERCHANT)
    chain.next_block()
    chain.sale(item, merchant=MERCHANT, consumer=consumer)
    chain.record(item, BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    return item


def test_index_head_is_the_checkpoint_with_its_time(store: Store) -> None:
    assert q.index_head(store) is None
    chain = ChainBuilder()
    chain.register("urn:x:1")
    chain.next_block(seconds=30)
    _apply(store, chain)
    head = q.index_head(store)
    assert head == q.IndexHead(chain.number, chain.headers[-1].hash, chain.time)


def test_item_facts(store: Store) -> None:
    chain = ChainBuilder()
    assert q.item(store, "0x" + "ab" * 32) is None
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1", merchant=MERCHANT)
    chain.next_block()
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    delivered = chain.time
    _apply(store, chain)
    row = q.item(store, item.upper().replace("0X", "0x"))  # any case
    assert row is not None
    assert (row.merchant, row.delivered_at, row.event_count) == (MERCHANT, delivered, 2)
    assert (row.recalled, row.destroyed, row.chain_ok) == (False, False, True)
    assert row.head_hash == chain.items[item].head


def test_a_recall_holds_until_the_item_is_back_in_circulation(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:x:recall")
    chain.next_block()
    chain.record(item, BizStep.HOLDING, Disposition.RECALLED)
    chain.next_block()
    chain.record(item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT)  # moving it does not end the recall
    _apply(store, chain)
    assert q.item(store, item).recalled  # type: ignore[union-attr]
    chain.next_block()
    chain.record(item, BizStep.REPAIRING, Disposition.CONFORMANT)
    _apply(store, chain)
    assert not q.item(store, item).recalled  # type: ignore[union-attr]
    chain.next_block()
    chain.record(item, BizStep.HOLDING, Disposition.RECALLED)  # recalled again
    _apply(store, chain)
    assert q.item(store, item).recalled  # type: ignore[union-attr]


def test_destroyed_and_broken_history_show(store: Store) -> None:
    chain = ChainBuilder()
    destroyed = chain.register("urn:x:d")
    broken = chain.register("urn:x:b")
    chain.next_block()
    chain.record(destroyed, BizStep.DESTROYING, Disposition.DESTROYED)
    chain.record(broken, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    _apply(store, chain)
    assert q.item(store, destroyed).destroyed  # type: ignore[union-attr]
    assert not q.item(store, broken).chain_ok  # type: ignore[union-attr]


def test_current_sale_is_the_latest_and_knows_when_it_ended(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:s")
    _apply(store, chain)
    sale = q.current_sale(store, item)
    assert sale is not None
    assert (sale.sale_seq, sale.consumer, sale.returns, sale.closed) == (1, CONSUMER, 0, False)
    assert q.current_sale(store, "0x" + "00" * 32) is None

    # a return authorized and accepted ends the sale; the item is sold again
    chain.next_block()
    rid = chain.authorize(item, 1)
    chain.next_block()
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    _apply(store, chain)
    assert q.current_sale(store, item).closed is False  # type: ignore[union-attr]
    chain.next_block()
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 90, 10)
    _apply(store, chain)
    sale = q.current_sale(store, item)
    assert sale is not None and (sale.returns, sale.closed) == (1, True)
    chain.next_block()
    chain.sale(item, merchant=MERCHANT, consumer=OTHER_CONSUMER)
    _apply(store, chain)
    sale = q.current_sale(store, item)
    assert sale is not None and (sale.sale_seq, sale.consumer, sale.returns, sale.closed) == (
        2,
        OTHER_CONSUMER,
        0,
        False,
    )


def test_a_failed_inspection_ends_the_sale_only_once_paid(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:f")
    chain.next_block()
    rid = chain.authorize(item, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.REJECTED, ReturnState.RECEIVED, deadline=chain.time + DAY)
    _apply(store, chain)
    assert q.open_return(store, item).return_id == rid  # type: ignore[union-attr]  # may still be disputed
    assert not q.current_sale(store, item).closed  # type: ignore[union-attr]
    chain.next_block(seconds=2 * DAY)
    chain.transition(rid, ReturnState.RECLAIMED, ReturnState.REJECTED)
    chain.settle(rid, 0, 100)
    _apply(store, chain)
    assert q.open_return(store, item) is None
    assert q.current_sale(store, item).closed  # type: ignore[union-attr]


def test_open_return_and_cancel(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:o")
    _apply(store, chain)
    assert q.open_return(store, item) is None
    chain.next_block()
    rid = chain.authorize(item, 1)
    _apply(store, chain)
    found = q.open_return(store, item)
    assert found is not None and found.return_id == rid and found.state is ReturnState.AUTHORIZED and found.is_open
    chain.next_block()
    chain.transition(rid, ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    chain.settle(rid, 0, 100)
    _apply(store, chain)
    assert q.open_return(store, item) is None
    sale = q.current_sale(store, item)
    assert sale is not None and (sale.returns, sale.closed) == (1, False)  # a cancelled return keeps the sale


def test_policy_versions_newest_first(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.next_block()
    chain.policy(MERCHANT, 2, ship_by_days=10)
    chain.policy(OTHER_MERCHANT, 1)
    _apply(store, chain)
    versions = q.policy_versions(store, MERCHANT.upper().replace("0X", "0x"))
    assert [p.version for p in versions] == [2, 1]
    assert versions[0].ship_by_days == 10
    assert q.policy_version(store, merchant=MERCHANT, version=1) == versions[1]
    assert q.policy_version(store, merchant=MERCHANT, version=3) is None
    assert q.policy_versions(store, addr(30)) == ()


def test_recent_returns_count_the_last_90_days_exactly(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    first = _sold_and_delivered(chain, "urn:x:r1")
    chain.next_block()
    chain.authorize(first, 1)
    authorized_at = chain.time
    second = _sold_and_delivered(chain, "urn:x:r2")
    chain.next_block()
    chain.authorize(second, 1)
    later = chain.time
    _apply(store, chain)
    limit = authorized_at + 90 * DAY
    assert q.consumer_recent_returns(store, consumer=CONSUMER, now=limit - 1) == 2
    assert q.consumer_recent_returns(store, consumer=CONSUMER, now=limit) == 1  # 90 days old: no longer recent
    assert q.consumer_recent_returns(store, consumer=CONSUMER, now=later + 90 * DAY) == 0
    assert q.consumer_recent_returns(store, consumer=OTHER_CONSUMER, now=later) == 0


def test_list_returns_filters_and_pages(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.policy(OTHER_MERCHANT, 1)
    ids: list[str] = []
    times: list[int] = []
    for n in range(5):
        item = _sold_and_delivered(chain, f"urn:x:l{n}")
        chain.next_block(seconds=DAY)
        ids.append(chain.authorize(item, 1))
        times.append(chain.time)
    chain.next_block()
    chain.transition(ids[0], ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    other = chain.register("urn:x:other", merchant=OTHER_MERCHANT)
    chain.sale(other, merchant=OTHER_MERCHANT)
    chain.next_block()
    other_rid = chain.authorize(other, 1, merchant=OTHER_MERCHANT)
    _apply(store, chain)

    page = q.list_returns(store, merchant=MERCHANT, limit=2)
    assert page.count == 5
    assert [r.return_id for r in page.rows] == [ids[4], ids[3]]  # newest first
    page = q.list_returns(store, merchant=MERCHANT, limit=2, offset=4)
    assert [r.return_id for r in page.rows] == [ids[0]]
    assert q.list_returns(store, merchant=OTHER_MERCHANT).rows[0].return_id == other_rid
    cancelled = q.list_returns(store, merchant=MERCHANT, states=[ReturnState.CANCELLED])
    assert (cancelled.count, cancelled.rows[0].return_id) == (1, ids[0])
    window = q.list_returns(store, merchant=MERCHANT, authorized_from=times[1], authorized_to=times[3])
    assert {r.return_id for r in window.rows} == set(ids[1:4])
    for n, rid in enumerate(ids[:3]):
        _request(store, item_id=f"0x{n:064x}", return_id=rid, reason="damaged" if n == 2 else "changed_mind")
    _request(store, item_id="0x" + "ff" * 32, return_id=None, reason="damaged")  # not authorized: not listed
    damaged = q.list_returns(store, merchant=MERCHANT, reason_code="damaged")
    assert (damaged.count, [r.return_id for r in damaged.rows]) == (1, [ids[2]])
    assert damaged.reason_codes == {ids[2]: "damaged"}
    everything = q.list_returns(store, merchant=MERCHANT)
    assert everything.reason_codes == {ids[0]: "changed_mind", ids[1]: "changed_mind", ids[2]: "damaged"}
    assert q.list_returns(store, consumer=CONSUMER).count == 6


def _request(store: Store, *, item_id: str, return_id: str | None, reason: str) -> None:
    api_queries.insert_return_request(
        store,
        api_queries.ReturnRequestRow(
            id=f"rr_{item_id[-32:]}",
            item_id=item_id,
            consumer=CONSUMER,
            merchant=MERCHANT,
            reason_code=reason,
            comment=None,
            outcome="approve" if return_id else "reject",
            reasons=[],
            return_id=return_id,
            tx_hash=None,
            created_at=1,
            decided_at=1,
            decided_by="auto",
            active_item=None,
        ),
    )


def test_return_detail_timeline_in_chain_order(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:t")
    chain.next_block()
    rid = chain.authorize(item, 1)
    chain.next_block()
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.record(item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT, biz_transaction=rid)
    chain.settle(rid, 95, 5)
    chain.next_block()
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.record(item, BizStep.ARRIVING, Disposition.RETURNED, biz_transaction=rid)
    _apply(store, chain)

    assert q.return_detail(store, "0x" + "00" * 32) is None
    detail = q.return_detail(store, rid)
    assert detail is not None
    assert detail.ret.state is ReturnState.RECEIVED and detail.ret.settled
    assert detail.payout is not None and (detail.payout.consumer_amount, detail.payout.merchant_amount) == (95, 5)
    assert [e.biz_step for e in detail.item_events] == [BizStep.TRANSPORTING, BizStep.ARRIVING]
    kinds = [e.kind for e in detail.timeline]
    assert kinds == ["authorized", "state_changed", "item_event", "settled", "state_changed", "item_event"]
    assert q.return_by_id(store, rid) == detail.ret


def test_eligibility_snapshot_reads_everything_at_once(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:e")
    chain.next_block()
    _apply(store, chain)
    snap = q.eligibility_snapshot(store, item_id=item, requester=CONSUMER, now=chain.time)
    assert snap.item is not None and snap.sale is not None and snap.policy is not None
    assert (snap.policy.merchant, snap.policy.version) == (MERCHANT, 1)
    assert snap.open_return is None and snap.consumer_returns_90d == 0
    assert snap.head is not None and snap.head.block_number == chain.number
    assert snap.now == chain.time  # the head's time when the caller's clock is behind it
    assert q.eligibility_snapshot(store, item_id=item, requester=CONSUMER, now=chain.time + 5).now == chain.time + 5

    unknown = q.eligibility_snapshot(store, item_id="0x" + "01" * 32, requester=CONSUMER, now=chain.time)
    assert (unknown.item, unknown.sale, unknown.policy) == (None, None, None)


def test_list_sales_newest_first_with_their_returns(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    first = _sold_and_delivered(chain, "urn:x:sale1")
    chain.next_block()
    chain.policy(MERCHANT, 2)
    chain.next_block(seconds=DAY)
    second = chain.register("urn:x:sale2", merchant=MERCHANT)
    chain.sale(second, merchant=MERCHANT, policy_version=2)
    chain.next_block()
    rid = chain.authorize(first, 1)
    other = chain.register("urn:x:sale3", merchant=OTHER_MERCHANT)
    chain.sale(other, merchant=OTHER_MERCHANT)
    chain.next_block()
    _apply(store, chain)

    page = q.list_sales(store, merchant=MERCHANT)
    assert page.count == 2
    assert [(s.item_id, s.policy_version, s.returns, s.closed) for s in page.rows] == [
        (second, 2, 0, False),
        (first, 1, 1, False),
    ]
    assert [s.item_id for s in q.list_sales(store, merchant=MERCHANT, limit=1, offset=1).rows] == [first]
    chain.next_block()
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 90, 10)
    chain.next_block()
    _apply(store, chain)
    assert q.list_sales(store, merchant=MERCHANT).rows[1].closed is True
    assert q.list_sales(store, merchant=OTHER_MERCHANT).count == 1


def test_merchant_counts_group_by_state_day_and_policy(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    items = [_sold_and_delivered(chain, f"urn:x:c{n}") for n in range(3)]  # each sale a day after the last
    chain.next_block()
    rids = [chain.authorize(item, 1) for item in items[:2]]
    chain.next_block()
    chain.transition(rids[0], ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    other = chain.register("urn:x:c-other", merchant=OTHER_MERCHANT)
    chain.sale(other, merchant=OTHER_MERCHANT)
    chain.next_block()
    _apply(store, chain)

    counts = q.merchant_counts(store, merchant=MERCHANT, since=0)
    assert counts.sales == 3 and counts.sales_by_policy == {1: 3}
    assert counts.returns_by_state == {ReturnState.CANCELLED: 1, ReturnState.AUTHORIZED: 1}
    assert counts.settled_returns == 0
    sold_days = Counter(sale.sold_at // DAY for sale in q.list_sales(store, merchant=MERCHANT).rows)
    assert counts.sales_by_day == sold_days and len(sold_days) >= 2  # the sales fall on different days
    returned_days = Counter(r.authorized_at // DAY for r in q.list_returns(store, merchant=MERCHANT).rows)
    assert counts.returns_by_day == returned_days and sum(returned_days.values()) == 2
    later = q.merchant_counts(store, merchant=MERCHANT, since=chain.time + 1)
    assert (later.sales, sum(later.sales_by_day.values()), sum(later.returns_by_day.values())) == (3, 0, 0)
