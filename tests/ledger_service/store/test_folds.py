"""State tables (items, returns, roles, sellers) follow the events as a reader of the index expects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.store import Store
from ledger_service.store.tables import escrow_payouts, items, returns, roles, sellers
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, h


def _apply(store: Store, chain: ChainBuilder, *, since: int = 0) -> None:
    """Applies the chain's blocks above ``since``."""
    store.apply(
        events=[ev for ev in chain.events if ev.pos.block_number > since],
        headers=[x for x in chain.headers if x.number > since],
        checkpoint=chain.ref(),
        prune_below=0,
    )


def _rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(table))]


def _item(store: Store, item_id: str) -> dict[str, Any]:
    [row] = [r for r in _rows(store, items) if r["item_id"] == item_id]
    return row


def test_item_row_follows_its_events(store: Store) -> None:
    chain = ChainBuilder()
    uri = "urn:epc:id:sgtin:0614141.107346.2017"
    item = chain.register(uri, manufacturer=addr(1), merchant=addr(2))
    registered_at = chain.time
    _apply(store, chain)
    row = _item(store, item)
    assert row["uri"] == uri
    assert row["manufacturer"] == addr(1)
    assert row["merchant"] == addr(2)
    assert row["registered_at"] == registered_at
    assert (row["event_count"], row["last_biz_step"], row["last_disposition"]) == (1, BizStep.COMMISSIONING, 1)
    assert row["head_hash"] == chain.items[item].head
    assert row["delivered_at"] is None
    assert (row["destroyed"], row["chain_ok"]) == (False, True)

    since = chain.number
    chain.next_block(seconds=100)
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.next_block(seconds=3600)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    delivered = chain.time
    chain.change_merchant(item, addr(2), addr(8))
    chain.next_block(seconds=60)
    chain.record(item, BizStep.RECEIVING, Disposition.RETURNED)
    _apply(store, chain, since=since)
    row = _item(store, item)
    assert row["merchant"] == addr(8)
    assert row["event_count"] == 4
    assert row["head_hash"] == chain.items[item].head
    assert (row["last_biz_step"], row["last_disposition"]) == (BizStep.RECEIVING, Disposition.RETURNED)
    assert row["last_event_at"] == chain.time
    assert row["delivered_at"] == delivered
    assert row["registered_at"] == registered_at


def test_delivered_at_is_the_first_delivery_of_the_current_sale(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    chain.record(item, BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)  # not a delivery to the consumer
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    first = chain.time
    _apply(store, chain)
    since = chain.number
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)  # a later "delivery" does not move the window
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.RECEIVING, Disposition.RETAIL_SOLD)  # not arriving
    _apply(store, chain, since=since)  # a later batch: the stored row's value carries over
    assert _item(store, item)["delivered_at"] == first

    since = chain.number
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)  # sold again: not delivered yet
    _apply(store, chain, since=since)
    assert _item(store, item)["delivered_at"] is None
    since = chain.number
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    _apply(store, chain, since=since)
    assert _item(store, item)["delivered_at"] == chain.time


def test_destroying_marks_the_item_destroyed(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    other = chain.register("urn:epc:id:sgtin:0614141.107346.2")
    chain.next_block()
    chain.record(item, BizStep.DESTROYING, Disposition.DESTROYED)
    _apply(store, chain)
    assert _item(store, item)["destroyed"] is True
    assert _item(store, other)["destroyed"] is False


def test_events_of_an_unregistered_item_are_kept_without_an_items_row(store: Store) -> None:
    chain = ChainBuilder()
    stray = h("never registered")
    chain.record(stray, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.next_block()
    chain.record(stray, BizStep.RECEIVING, Disposition.SELLABLE_ACCESSIBLE)
    _apply(store, chain)
    counts = store.counts()
    assert (counts["items"], counts["item_events"], counts["chain_problems"]) == (0, 2, 0)


def _return_flow(chain: ChainBuilder, *, ship_by_days: int = 14) -> tuple[str, str]:
    chain.policy(addr(2), 1, ship_by_days=ship_by_days)
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    sale = chain.sale(item)
    chain.next_block(seconds=DAY)
    return item, chain.authorize(item, sale, ship_by_days=ship_by_days)


def _return(store: Store, return_id: str) -> dict[str, Any]:
    [row] = [r for r in _rows(store, returns) if r["return_id"] == return_id]
    return row


def test_return_row_follows_its_lifecycle(store: Store) -> None:
    chain = ChainBuilder()
    item, rid = _return_flow(chain)
    authorized_at = chain.time
    authorized_block = chain.number
    _apply(store, chain)
    row = _return(store, rid)
    assert row["item_id"] == item
    assert row["state"] == ReturnState.AUTHORIZED
    assert row["amount"] == 2**96 - 1
    assert row["ship_by"] == authorized_at + 14 * DAY
    assert row["authorized_at"] == authorized_at
    assert row["updated_at"] == authorized_at
    assert (row["inspect_by"], row["dispute_by"], row["settled"]) == (None, None, False)
    assert row["block_number"] == authorized_block

    since = chain.number
    chain.next_block(seconds=DAY)
    inspect_by = chain.time + 7 * DAY
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=inspect_by)
    chain.next_block(seconds=DAY)
    chain.transition(rid, ReturnState.RECEIVED, ReturnState.IN_TRANSIT)
    chain.next_block(seconds=DAY)
    dispute_by = chain.time + 5 * DAY
    chain.transition(rid, ReturnState.REJECTED, ReturnState.RECEIVED, deadline=dispute_by)
    _apply(store, chain, since=since)
    row = _return(store, rid)
    assert row["state"] == ReturnState.REJECTED
    assert (row["inspect_by"], row["dispute_by"]) == (inspect_by, dispute_by)
    assert row["updated_at"] == chain.time
    assert row["authorized_at"] == authorized_at
    assert row["settled"] is False

    since = chain.number
    chain.next_block(seconds=6 * DAY)
    chain.transition(rid, ReturnState.RECLAIMED, ReturnState.REJECTED)
    chain.settle(rid, 0, 2**96 - 1)
    _apply(store, chain, since=since)
    row = _return(store, rid)
    assert (row["state"], row["settled"], row["updated_at"]) == (ReturnState.RECLAIMED, True, chain.time)
    [payout] = _rows(store, escrow_payouts)
    assert (payout["consumer_amount"], payout["merchant_amount"]) == (0, 2**96 - 1)
    assert payout["paid_at"] == chain.time


def test_fast_refund_settles_in_the_same_block_as_the_scan(store: Store) -> None:
    chain = ChainBuilder()
    _, rid = _return_flow(chain)
    chain.next_block(seconds=DAY)
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.settle(rid, 95, 5)
    _apply(store, chain)
    row = _return(store, rid)
    assert (row["state"], row["settled"]) == (ReturnState.IN_TRANSIT, True)
    [payout] = _rows(store, escrow_payouts)
    assert payout["paid_at"] == chain.time


def test_authorized_at_without_a_known_policy_falls_back_to_ship_by(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    sale = chain.sale(item, policy_version=9)
    rid = chain.authorize(item, sale, policy_version=9)
    _apply(store, chain)
    row = _return(store, rid)
    assert row["authorized_at"] == row["ship_by"]


def test_roles_follow_grants_and_revocations(store: Store) -> None:
    chain = ChainBuilder()
    carrier, inspector = h("CARRIER_ROLE"), h("INSPECTOR_ROLE")
    chain.role(carrier, addr(3), True)
    chain.role(inspector, addr(4), True)
    chain.next_block()
    chain.role(carrier, addr(3), False)
    chain.role(inspector, addr(5), True)
    chain.next_block()
    chain.role(carrier, addr(3), True)
    _apply(store, chain)
    assert sorted((r["role"], r["account"], r["granted_block"]) for r in _rows(store, roles)) == sorted(
        [(carrier, addr(3), 3), (inspector, addr(4), 1), (inspector, addr(5), 2)]
    )


def test_sellers_follow_seller_set(store: Store) -> None:
    chain = ChainBuilder()
    chain.set_seller(addr(2), addr(4), True)
    chain.set_seller(addr(2), addr(5), True)
    chain.set_seller(addr(8), addr(4), True)
    _apply(store, chain)
    since = chain.number
    chain.next_block()
    chain.set_seller(addr(2), addr(4), False)
    chain.set_seller(addr(8), addr(9), False)  # never allowed: nothing to remove
    _apply(store, chain, since=since)
    assert sorted((r["merchant"], r["seller"]) for r in _rows(store, sellers)) == [
        (addr(2), addr(5)),
        (addr(8), addr(4)),
    ]
