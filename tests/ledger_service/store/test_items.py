"""Item reads answer what the returns workflow asks, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.store import Store
from ledger_service.store import items as q
from tests.ledger_service.store.builders import ChainBuilder, addr, apply_new

MERCHANT = addr(2)


def test_item_facts(store: Store) -> None:
    chain = ChainBuilder()
    assert q.item(store, "0x" + "ab" * 32) is None
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1", merchant=MERCHANT)
    chain.next_block()
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    delivered = chain.time
    apply_new(store, chain)
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
    apply_new(store, chain)
    assert q.item(store, item).recalled  # type: ignore[union-attr]
    chain.next_block()
    chain.record(item, BizStep.REPAIRING, Disposition.CONFORMANT)
    apply_new(store, chain)
    assert not q.item(store, item).recalled  # type: ignore[union-attr]
    chain.next_block()
    chain.record(item, BizStep.HOLDING, Disposition.RECALLED)  # recalled again
    apply_new(store, chain)
    assert q.item(store, item).recalled  # type: ignore[union-attr]


def test_destroyed_and_broken_history_show(store: Store) -> None:
    chain = ChainBuilder()
    destroyed = chain.register("urn:x:d")
    broken = chain.register("urn:x:b")
    chain.next_block()
    chain.record(destroyed, BizStep.DESTROYING, Disposition.DESTROYED)
    chain.record(broken, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    apply_new(store, chain)
    assert q.item(store, destroyed).destroyed  # type: ignore[union-attr]
    assert not q.item(store, broken).chain_ok  # type: ignore[union-attr]
