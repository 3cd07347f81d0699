"""Return reads answer what the returns workflow asks, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store import Store
from ledger_service.store import returns as q
from ledger_service.store.sales import current_sale
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, apply_new, sold_and_delivered
from tests.support.store_reads import consumer_recent_returns, open_return

MERCHANT, OTHER_MERCHANT, CONSUMER, OTHER_CONSUMER = addr(2), addr(9), addr(6), addr(7)


def test_open_return_and_cancel(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = sold_and_delivered(chain, "urn:x:o", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    apply_new(store, chain)
    assert open_return(store, item) is None
    chain.next_block()
    rid = chain.authorize(item, 1)
    apply_new(store, chain)
    found = open_return(store, item)
    assert found is not None and found.return_id == rid and found.state is ReturnState.AUTHORIZED and found.is_open
    chain.next_block()
    chain.transition(rid, ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    chain.settle(rid, 0, 100)
    apply_new(store, chain)
    assert open_return(store, item) is None
    sale = current_sale(store, item)
    assert sale is not None and (sale.returns, sale.closed) == (1, False)  # a cancelled return keeps the sale


def test_recent_returns_count_the_last_90_days_exactly(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    first = sold_and_delivered(chain, "urn:x:r1", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    chain.next_block()
    chain.authorize(first, 1)
    authorized_at = chain.time
    second = sold_and_delivered(chain, "urn:x:r2", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    chain.next_block()
    chain.authorize(second, 1)
    later = chain.time
    apply_new(store, chain)
    limit = authorized_at + 90 * DAY
    assert consumer_recent_returns(store, consumer=CONSUMER, now=limit - 1) == 2
    assert consumer_recent_returns(store, consumer=CONSUMER, now=limit) == 1  # 90 days old: no longer recent
    assert consumer_recent_returns(store, consumer=CONSUMER, now=later + 90 * DAY) == 0
    assert consumer_recent_returns(store, consumer=OTHER_CONSUMER, now=later) == 0


def test_list_returns_filters_and_pages(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.policy(OTHER_MERCHANT, 1)
    ids: list[str] = []
    times: list[int] = []
    for n in range(5):
        item = sold_and_delivered(chain, f"urn:x:l{n}", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
        chain.next_block(seconds=DAY)
        ids.append(chain.authorize(item, 1))
        times.append(chain.time)
    chain.next_block()
    chain.transition(ids[0], ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    other = chain.register("urn:x:other", merchant=OTHER_MERCHANT)
    chain.sale(other, merchant=OTHER_MERCHANT)
    chain.next_block()
    other_rid = chain.authorize(other, 1, merchant=OTHER_MERCHANT)
    apply_new(store, chain)

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
    q.insert_return_request(
        store,
        q.ReturnRequestRow(
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
    item = sold_and_delivered(chain, "urn:x:t", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    chain.next_block()
    rid = chain.authorize(item, 1)
    chain.next_block()
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.record(item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT, biz_transaction=rid)
    chain.settle(rid, 95, 5)
    chain.next_block()
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.record(item, BizStep.ARRIVING, Disposition.RETURNED, biz_transaction=rid)
    apply_new(store, chain)

    assert q.return_detail(store, "0x" + "00" * 32) is None
    detail = q.return_detail(store, rid)
    assert detail is not None
    assert detail.ret.state is ReturnState.RECEIVED and detail.ret.settled
    assert detail.payout is not None and (detail.payout.consumer_amount, detail.payout.merchant_amount) == (95, 5)
    assert [e.biz_step for e in detail.item_events] == [BizStep.TRANSPORTING, BizStep.ARRIVING]
    kinds = [e.kind for e in detail.timeline]
    assert kinds == ["authorized", "state_changed", "item_event", "settled", "state_changed", "item_event"]
    assert q.return_by_id(store, rid) == detail.ret
