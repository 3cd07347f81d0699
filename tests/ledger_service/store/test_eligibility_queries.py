"""The eligibility route's one-statement read equals the multi-statement snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.errors import NotFoundError
from ledger_service.store import Store, api_queries
from ledger_service.store import queries as q
from ledger_service.store.eligibility_queries import eligibility_read, needs_recent_returns
from ledger_service.store.queries import ItemRow, SaleRow
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr

MERCHANT, OTHER_MERCHANT, CONSUMER, OTHER_CONSUMER = addr(2), addr(9), addr(6), addr(7)
UNKNOWN = "0x" + "01" * 32


def _apply(store: Store, chain: ChainBuilder) -> None:
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
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    return item


def _fixed(requester: str):  # type: ignore[no-untyped-def]
    def pick(item: ItemRow | None, sale: SaleRow | None) -> str:
        return requester

    return pick


def _histories(chain: ChainBuilder) -> list[str]:
    """Items in every state the eligibility rules tell apart."""
    chain.policy(MERCHANT, 1)
    unsold = chain.register("urn:x:unsold", merchant=MERCHANT)
    chain.next_block()
    delivered = _sold_and_delivered(chain, "urn:x:delivered")
    undelivered = chain.register("urn:x:undelivered", merchant=MERCHANT)
    chain.next_block()
    chain.sale(undelivered, merchant=MERCHANT, consumer=OTHER_CONSUMER)
    recalled = _sold_and_delivered(chain, "urn:x:recalled")
    chain.next_block()
    chain.record(recalled, BizStep.HOLDING, Disposition.RECALLED)
    back = _sold_and_delivered(chain, "urn:x:back")
    chain.next_block()
    chain.record(back, BizStep.HOLDING, Disposition.RECALLED)
    chain.next_block()
    chain.record(back, BizStep.REPAIRING, Disposition.CONFORMANT)
    destroyed = _sold_and_delivered(chain, "urn:x:destroyed")
    chain.next_block()
    chain.record(destroyed, BizStep.DESTROYING, Disposition.DESTROYED)
    broken = chain.register("urn:x:broken", merchant=MERCHANT)
    chain.next_block()
    chain.record(broken, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    open_return = _sold_and_delivered(chain, "urn:x:open")
    chain.next_block()
    chain.authorize(open_return, 1)
    rejected = _sold_and_delivered(chain, "urn:x:rejected")
    chain.next_block()
    rid = chain.authorize(rejected, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.REJECTED, ReturnState.RECEIVED, deadline=chain.time + DAY)
    resold = _sold_and_delivered(chain, "urn:x:resold")
    chain.next_block()
    rid = chain.authorize(resold, 1)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.transition(rid, ReturnState.ACCEPTED, ReturnState.RECEIVED)
    chain.settle(rid, 90, 10)
    closed = _sold_and_delivered(chain, "urn:x:closed")
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
    _apply(store, chain)
    api_queries.set_item_category(store, item_id=items[1], category="shoes", set_by=MERCHANT, set_at=chain.time)
    for item in items:
        for requester in (CONSUMER, OTHER_CONSUMER):
            for now in (chain.time, chain.time - 10 * DAY, chain.time + 100 * DAY):
                expected = q.eligibility_snapshot(store, item_id=item, requester=requester, now=now)
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
    item = _sold_and_delivered(chain, "urn:x:who")
    chain.next_block()
    chain.authorize(item, 1)
    _apply(store, chain)
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
    assert snap == q.eligibility_snapshot(store, item_id=UNKNOWN, requester=CONSUMER, now=5)
    assert (snap.head, snap.item, snap.now) == (None, None, 5)


def test_recent_returns_are_read_only_when_the_fast_refund_counts_them(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    item = _sold_and_delivered(chain, "urn:x:count")
    _apply(store, chain)
    policy = q.policy_version(store, merchant=MERCHANT, version=1)
    assert policy is not None and needs_recent_returns(policy)
    assert not needs_recent_returns(replace(policy, fast_refund=False))
    assert not needs_recent_returns(replace(policy, fast_refund_max_returns_90d=0))
    assert not needs_recent_returns(None)
    assert eligibility_read(store, item_id=item, now=chain.time, requester=_fixed(CONSUMER)).policy == policy
