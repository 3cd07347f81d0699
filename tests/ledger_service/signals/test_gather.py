"""Signals from an index built from crafted events: a consumer who returns most of what it buys, late in the
window and in a burst, against a merchant's ordinary customers; the right answers are counted from the plan."""

from __future__ import annotations

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.signals import signals_for
from ledger_service.store import Store
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr, apply_new

MERCHANT = addr(2)
OTHER_MERCHANT = addr(12)
SERIAL = addr(6)
WINDOW_DAYS = 30  # ChainBuilder.policy's window


def _craft(store: Store) -> tuple[int, dict[str, str], int, int]:
    """Ten ordinary customers buy one item each (one of them returns it); SERIAL buys four and returns all:
    one three days after delivery, three in the window's last day within three hours. SERIAL also bought
    and returned at another merchant, which the merchant's signals must not count. Returns (now, SERIAL's
    return ids by item, merchant's sales, merchant's returns)."""
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.policy(OTHER_MERCHANT, 1)
    sales = returns = 0
    for n in range(10):
        chain.next_block()
        item = chain.register(f"urn:epc:id:sgtin:0614141.107346.pop{n}", merchant=MERCHANT)
        chain.next_block()
        chain.sale(item, merchant=MERCHANT, consumer=addr(20 + n))
        sales += 1
        if n == 0:
            chain.next_block()
            chain.authorize(item, 1, merchant=MERCHANT, consumer=addr(20))
            returns += 1
    mine = []
    for n in range(4):
        chain.next_block()
        item = chain.register(f"urn:epc:id:sgtin:0614141.107346.serial{n}", merchant=MERCHANT)
        chain.next_block()
        chain.sale(item, merchant=MERCHANT, consumer=SERIAL)
        sales += 1
        mine.append(item)
    elsewhere = chain.register("urn:epc:id:sgtin:0614141.107346.elsewhere", merchant=OTHER_MERCHANT)
    chain.next_block()
    chain.sale(elsewhere, merchant=OTHER_MERCHANT, consumer=SERIAL)
    chain.next_block(seconds=DAY)
    for item in mine:
        chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    chain.record(elsewhere, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    delivered = chain.time
    ids: dict[str, str] = {}
    chain.next_block(seconds=3 * DAY)
    ids[mine[0]] = chain.authorize(mine[0], 1, merchant=MERCHANT, consumer=SERIAL)
    chain.authorize(elsewhere, 1, merchant=OTHER_MERCHANT, consumer=SERIAL)
    chain.next_block(seconds=delivered + (WINDOW_DAYS - 1) * DAY - chain.time)
    for n, item in enumerate(mine[1:]):
        if n:
            chain.next_block(seconds=3600)
        ids[item] = chain.authorize(item, 1, merchant=MERCHANT, consumer=SERIAL)
    returns += 4
    # a warehouse's receiving scan of another unit, captured with the first late return's RMA
    chain.next_block()
    chain.record(elsewhere, BizStep.RECEIVING, Disposition.RETURNED, biz_transaction=ids[mine[1]])
    apply_new(store, chain)
    return chain.time, ids, sales, returns


def test_a_serial_wardrobing_burst_returner_against_the_merchants_customers(store: Store) -> None:
    now, _ids, sales, returns = _craft(store)
    found = {s.kind: s for s in signals_for(store, consumer=SERIAL, merchant=MERCHANT, now=now)}
    assert set(found) == {"serial_returner", "wardrobing", "burst"}
    serial = found["serial_returner"]
    population = returns / sales  # 5 of 14
    ratio = 1.0 / population  # SERIAL returned 4 of its 4
    assert serial.figures["returns"] == 4
    assert serial.figures["purchases"] == 4
    assert serial.figures["population_rate"] == round(population, 4)
    assert serial.figures["ratio"] == round(ratio, 2)
    assert serial.score == round(min(1.0, (ratio - 1) / 4), 2)
    wardrobe = found["wardrobing"]
    assert wardrobe.figures["late_returns"] == 3
    assert wardrobe.figures["min_days_held"] == WINDOW_DAYS - 1
    assert found["burst"].figures["returns"] == 3
    assert found["burst"].score == round(1 / 3, 2)


def test_the_other_unit_scanned_for_a_return_is_a_signal_on_it(store: Store) -> None:
    now, ids, _sales, _returns = _craft(store)
    (first, one), (second, late) = list(ids.items())[:2]
    on_late = {
        s.kind: s
        for s in signals_for(store, consumer=SERIAL, merchant=MERCHANT, now=now, return_id=late, item_id=second)
    }
    assert on_late["unit_mismatch"].figures["other_units"] == 1
    assert on_late["unit_mismatch"].figures["sold_unit"] == second
    on_first = signals_for(store, consumer=SERIAL, merchant=MERCHANT, now=now, return_id=one, item_id=first)
    assert "unit_mismatch" not in {s.kind for s in on_first}


def test_an_ordinary_customer_and_old_history_have_no_signals(store: Store) -> None:
    now, *_ = _craft(store)
    assert signals_for(store, consumer=addr(20), merchant=MERCHANT, now=now) == ()
    assert signals_for(store, consumer=SERIAL, merchant=OTHER_MERCHANT, now=now) == ()
    # 91 days later the returns are out of the look-back period
    assert signals_for(store, consumer=SERIAL, merchant=MERCHANT, now=now + 91 * DAY) == ()
