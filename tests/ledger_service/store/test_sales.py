"""Sale reads, and the eligibility route's one-statement read equal to the multi-statement reference
(tests/support/store_reads.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.errors import NotFoundError
from ledger_service.store import Store
from ledger_service.store import sales as q
from ledger_service.store.items import ItemRow, set_item_category
from ledger_service.store.returns import list_returns
from ledger_service.store.sales import SaleRow, eligibility_read, needs_recent_returns
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, apply_new, sold_and_delivered
from tests.support.store_reads import eligibility_snapshot, open_return, policy_version

MERCHANT, OTHER_MERCHANT, CONSUMER, OTHER_CONSUMER = addr(2), addr(9), addr(6), addr(7)
UNKNOWN = "0x" + "01" * 32


def test_current_sale_is_the_latest_and_knows_when_it_ended(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = sold_and_delivered(chain, "urn:x:s", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    apply_new(store, chain)
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
    apply_new(store, chain)
    assert q.current_sale(store, item).closed is False  # type: ignore[union-attr]
    chain.next_block()
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 90, 10)
    apply_new(store, chain)
    sale = q.current_sale(store, item)
    assert sale is not None and (sale.returns, sale.closed) == (1, True)
    chain.next_block()
    chain.sale(item, merchant=MERCHANT, consumer=OTHER_CONSUMER)
    apply_new(store, chain)
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
    item = sold_and_delivered(chain, "urn:x:f", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    chain.next_block()
    rid = chain.authorize(item, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.REJECTED, ReturnState.RECEIVED, deadline=chain.time + DAY)
    apply_new(store, chain)
    assert open_return(store, item).return_id == rid  # type: ignore[union-attr]  # may still be disputed
    assert not q.current_sale(store, item).closed  # type: ignore[union-attr]
    chain.next_block(seconds=2 * DAY)
    chain.transition(rid, ReturnState.RECLAIMED, ReturnState.REJECTED)
    chain.settle(rid, 0, 100)
    apply_new(store, chain)
    assert open_return(store, item) is None
    assert q.current_sale(store, item).closed  # type: ignore[union-attr]


def test_eligibility_snapshot_reads_everything_at_once(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = sold_and_delivered(chain, "urn:x:e", consumer=CONSUMER, merchant=MERCHANT, selling_step=True)
    chain.next_block()
    apply_new(store, chain)
    snap = eligibility_snapshot(store, item_id=item, requester=CONSUMER, now=chain.time)
    assert snap.item is not None and snap.sale is not None and snap.policy is not None
    assert (snap.policy.merchant, snap.policy.version) == (MERCHANT, 1)
    assert snap.open_return is None and snap.consumer_returns_90d == 0
    assert snap.head is not None and snap.head.block_number == chain.number
    assert snap.now == chain.time  # the head's time when the caller's clock is behind it
    assert eligibility_snapshot(store, item_id=item, requester=CONSUMER, now=chain.time + 5).now == chain.time + 5

    unknown = eligibility_snapshot(store, item_id="0x" + "01" * 32, requester=CONSUMER, now=chain.time)
    assert (unknown.item, unknown.sale, unknown.policy) == (None, None, None)


def _fixed(requester: str):  # type: ignore[no-untyped-def]
    def pick(item: ItemRow | None, sale: SaleRow | None) -> str:
        return requester

    return pick


def _histories(chain: ChainBuilder) -> list[str]:
    """Items in every state the eligibility rules tell apart."""
    chain.policy(MERCHANT, 1)
    unsold = chain.register("urn:x:unsold", merchant=MERCHANT)
    chain.next_block()
    delivered = sold_and_delivered(chain, "urn:x:delivered", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    undelivered = chain.register("urn:x:undelivered", merchant=MERCHANT)
    chain.next_block()
    chain.sale(undelivered, merchant=MERCHANT, consumer=OTHER_CONSUMER)
    recalled = sold_and_delivered(chain, "urn:x:recalled", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    chain.record(recalled, BizStep.HOLDING, Disposition.RECALLED)
    back = sold_and_delivered(chain, "urn:x:back", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    chain.record(back, BizStep.HOLDING, Disposition.RECALLED)
    chain.next_block()
    chain.record(back, BizStep.REPAIRING, Disposition.CONFORMANT)
    destroyed = sold_and_delivered(chain, "urn:x:destroyed", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    chain.record(destroyed, BizStep.DESTROYING, Disposition.DESTROYED)
    broken = chain.register("urn:x:broken", merchant=MERCHANT)
    chain.next_block()
    chain.record(broken, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    open_return = sold_and_delivered(chain, "urn:x:open", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    chain.authorize(open_return, 1)
    rejected = sold_and_delivered(chain, "urn:x:rejected", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    rid = chain.authorize(rejected, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.REJECTED, ReturnState.RECEIVED, deadline=chain.time + DAY)
    resold = sold_and_delivered(chain, "urn:x:resold", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    rid = chain.authorize(resold, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 90, 10)
    closed = sold_and_delivered(chain, "urn:x:closed", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    rid = chain.authorize(closed, 1)
    chain.transition(rid, ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    chain.settle(rid, 0, 100)
    chain.next_block()
    chain.sale(resold, merchant=MERCHANT, consumer=OTHER_CONSUMER)
    stranger = chain.register("urn:x:stranger", merchant=OTHER_MERCHANT)
    chain.next_block()
    chain.sale(stranger, merchant=OTHER_MERCHANT, consumer=CONSUMER, policy_version=7)  # no such policy
    chain.next_block(seconds=DAY)
    return [
        unsold,
        delivered,
        undelivered,
        recalled,
        back,
        destroyed,
        broken,
        open_return,
        rejected,
        resold,
        closed,
        stranger,
        UNKNOWN,
    ]


def test_one_read_equals_the_snapshot_for_every_state(store: Store) -> None:
    chain = ChainBuilder()
    items = _histories(chain)
    apply_new(store, chain)
    set_item_category(store, item_id=items[1], category="shoes", set_by=MERCHANT, set_at=chain.time)
    for item in items:
        for requester in (CONSUMER, OTHER_CONSUMER):
            for now in (chain.time, chain.time - 10 * DAY, chain.time + 100 * DAY):
                expected = eligibility_snapshot(store, item_id=item, requester=requester, now=now)
                got = eligibility_read(
                    store, item_id=item.upper().replace("0X", "0x"), now=now, requester=_fixed(requester)
                )
                if not needs_recent_returns(expected.policy):  # not read: the rules would not look at it
                    expected = replace(expected, consumer_returns_90d=0)
                assert got == expected, item
    delivered = eligibility_read(store, item_id=items[1], now=chain.time, requester=_fixed(CONSUMER))
    assert delivered.category == "shoes" and delivered.consumer_returns_90d == 4  # open, rejected, resold, closed
    assert eligibility_read(store, item_id=items[3], now=0, requester=_fixed(CONSUMER)).item.recalled  # type: ignore[union-attr]
    assert not eligibility_read(store, item_id=items[4], now=0, requester=_fixed(CONSUMER)).item.recalled  # type: ignore[union-attr]
    sale = eligibility_read(store, item_id=items[9], now=0, requester=_fixed(CONSUMER)).sale
    assert sale is not None and (sale.sale_seq, sale.consumer, sale.closed) == (2, OTHER_CONSUMER, False)


def test_the_requester_is_chosen_from_what_was_read(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = sold_and_delivered(chain, "urn:x:who", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    chain.next_block()
    chain.authorize(item, 1)
    apply_new(store, chain)
    seen: list[tuple[ItemRow | None, SaleRow | None]] = []

    def the_buyer(found: ItemRow | None, sale: SaleRow | None) -> str:
        seen.append((found, sale))
        return sale.consumer if sale is not None else addr(0)

    snap = eligibility_read(store, item_id=item, now=chain.time, requester=the_buyer)
    assert seen == [(snap.item, snap.sale)] and snap.consumer_returns_90d == 1

    def refuse(found: ItemRow | None, sale: SaleRow | None) -> str:
        raise NotFoundError("not yours")

    with pytest.raises(NotFoundError):
        eligibility_read(store, item_id=item, now=chain.time, requester=refuse)
    assert eligibility_read(store, item_id=item, now=chain.time, requester=the_buyer) == snap  # nothing left open


def test_an_empty_index_reads_nothing(store: Store) -> None:
    snap = eligibility_read(store, item_id=UNKNOWN, now=5, requester=_fixed(CONSUMER))
    assert snap == eligibility_snapshot(store, item_id=UNKNOWN, requester=CONSUMER, now=5)
    assert (snap.head, snap.item, snap.now) == (None, None, 5)


def test_recent_returns_are_read_only_when_the_fast_refund_counts_them(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = sold_and_delivered(chain, "urn:x:count", consumer=CONSUMER, merchant=MERCHANT, selling_step=False)
    apply_new(store, chain)
    policy = policy_version(store, merchant=MERCHANT, version=1)
    assert policy is not None and needs_recent_returns(policy)
    assert not needs_recent_returns(replace(policy, fast_refund=False))
    assert not needs_recent_returns(replace(policy, fast_refund_max_returns_90d=0))
    assert not needs_recent_returns(None)
    assert eligibility_read(store, item_id=item, now=chain.time, requester=_fixed(CONSUMER)).policy == policy


def test_list_sales_newest_first_with_their_returns(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    first = sold_and_delivered(chain, "urn:x:sale1", merchant=MERCHANT, consumer=CONSUMER, selling_step=True)
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
    apply_new(store, chain)

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
    apply_new(store, chain)
    assert q.list_sales(store, merchant=MERCHANT).rows[1].closed is True
    assert q.list_sales(store, merchant=OTHER_MERCHANT).count == 1


def test_merchant_counts_group_by_state_day_and_policy(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    items = [
        sold_and_delivered(chain, f"urn:x:c{n}", merchant=MERCHANT, consumer=CONSUMER, selling_step=True)
        for n in range(3)
    ]  # each sale a day after the last
    chain.next_block()
    rids = [chain.authorize(item, 1) for item in items[:2]]
    chain.next_block()
    chain.transition(rids[0], ReturnState.CANCELLED, ReturnState.AUTHORIZED)
    other = chain.register("urn:x:c-other", merchant=OTHER_MERCHANT)
    chain.sale(other, merchant=OTHER_MERCHANT)
    chain.next_block()
    apply_new(store, chain)

    counts = q.merchant_counts(store, merchant=MERCHANT, since=0)
    assert counts.sales == 3 and counts.sales_by_policy == {1: 3}
    assert counts.returns_by_state == {ReturnState.CANCELLED: 1, ReturnState.AUTHORIZED: 1}
    assert counts.settled_returns == 0
    sold_days = Counter(sale.sold_at // DAY for sale in q.list_sales(store, merchant=MERCHANT).rows)
    assert counts.sales_by_day == sold_days and len(sold_days) >= 2  # the sales fall on different days
    returned_days = Counter(r.authorized_at // DAY for r in list_returns(store, merchant=MERCHANT).rows)
    assert counts.returns_by_day == returned_days and sum(returned_days.values()) == 2
    later = q.merchant_counts(store, merchant=MERCHANT, since=chain.time + 1)
    assert (later.sales, sum(later.sales_by_day.values()), sum(later.returns_by_day.values())) == (3, 0, 0)
