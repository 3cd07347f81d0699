"""The store verifies every item's hash chain as it indexes, and records every inconsistency."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.core.hashchain import ChainLink, verify_chain
from ledger_service.store import Store
from ledger_service.store.handle import ChainBreakError
from ledger_service.store.tables import sales
from tests.ledger_service.store.builders import ChainBuilder, apply_new, headers_upto, upto


def _apply_all(store: Store, chain: ChainBuilder) -> None:
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)


def _problems(store: Store) -> list[tuple[Any, ...]]:
    return store.dump()["chain_problems"]  # (item_id, seq, block_number, reason)


def _chain_ok(store: Store) -> dict[tuple[str, int], bool]:
    return {(row[0], row[1]): row[11] for row in store.dump()["item_events"]}


def test_a_valid_chain_verifies(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    for step in (BizStep.PACKING, BizStep.SHIPPING, BizStep.ARRIVING):
        chain.next_block()
        chain.record(item, step, Disposition.IN_PROGRESS)
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert stats.problems == 0
    assert _problems(store) == []
    assert all(_chain_ok(store).values())
    assert store.dump()["items"][0][-1] is True


@pytest.mark.parametrize(
    ("tamper", "reasons"),
    [
        ("prev", ["prevHash does not link to the previous event's hash"]),
        ("hash", ["eventHash does not match the event's fields (altered)"]),
        ("field", ["eventHash does not match the event's fields (altered)"]),
        ("skip", ["expected event #2, found #3 (missing or reordered)"]),
    ],
)
def test_a_broken_link_is_stored_flagged_and_reported(store: Store, tamper: str, reasons: list[str]) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    bad = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper=tamper)
    chain.next_block()
    after = chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)  # links to the bad event's hash
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)

    problems = _problems(store)
    assert [p for p in problems if p[1] == bad.seq] == [(item, bad.seq, 2, reason) for reason in reasons]
    ok = _chain_ok(store)
    assert ok[(item, bad.seq)] is False  # kept, flagged
    # the next event links to the (bad) event's emitted hash and follows its seq: only the bad one is reported
    assert ok[(item, after.seq)] is True
    assert len(problems) == len(reasons)
    assert stats.problems == len(problems)
    item_row = store.dump()["items"][0]
    assert item_row[-1] is False  # items.chain_ok
    assert item_row[7] == 4  # event_count: every event is counted


def test_a_repeated_seq_is_stored_flagged_and_reported(store: Store) -> None:
    """(item_id, seq) is not a key of the index: an event repeating a seq is kept and reported, not refused."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    repeated = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="repeat")
    assert repeated.seq == 1
    stats = store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)

    assert stats.problems == 1
    assert _problems(store) == [(item, 1, 2, "expected event #2, found #1 (missing or reordered)")]
    rows = sorted((row[1], row[12], row[11]) for row in store.dump()["item_events"])  # (seq, block, chain_ok)
    assert rows == [(0, 1, True), (1, 1, True), (1, 2, False)]
    item_row = store.dump()["items"][0]
    assert (item_row[7], item_row[-1]) == (3, False)  # event_count counts it; items.chain_ok


def test_verification_continues_across_batches(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    chain.next_block()
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="prev")
    new = chain.events[2:]
    store.apply(events=new, headers=chain.headers[1:], checkpoint=chain.ref(), prune_below=0)
    assert [(p[1], p[3]) for p in _problems(store)] == [(2, "prevHash does not link to the previous event's hash")]


def test_a_malformed_event_is_kept_and_reported(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    event = chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.events[-1] = replace(event, location="0x1234")
    _apply_all(store, chain)
    assert [(p[1], p[3]) for p in _problems(store)] == [(1, "eventHash does not match the event's fields (altered)")]


def test_store_problems_equal_the_auditors(store: Store) -> None:
    """What the store reports per item is exactly what hashchain.verify_chain finds replaying the stored events."""
    chain = ChainBuilder()
    items = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}") for n in range(4)]
    tampers = [None, "prev", None, "hash", "skip", None, "field", None]
    for n, tamper in enumerate(tampers):
        chain.next_block()
        chain.record(items[n % 4], BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper=tamper)
        chain.record(items[(n + 1) % 4], BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    # two batches
    half = chain.number // 2
    first = [ev for ev in chain.events if ev.pos.block_number <= half]
    store.apply(events=first, headers=chain.headers[:half], checkpoint=chain.ref(half), prune_below=0)
    store.apply(events=chain.events[len(first) :], headers=chain.headers[half:], checkpoint=chain.ref(), prune_below=0)

    dump = store.dump()
    by_item: dict[str, list[tuple[Any, ...]]] = {}
    for row in sorted(dump["item_events"], key=lambda r: (r[12], r[13])):
        by_item.setdefault(row[0], []).append(row)
    expected = []
    for item_id, rows in by_item.items():
        links = [
            ChainLink(
                item_id=bytes.fromhex(item_id[2:]),
                seq=r[1],
                biz_step=r[2],
                disposition=r[3],
                actor=r[4],
                location=bytes.fromhex(r[5][2:]),
                document=bytes.fromhex(r[6][2:]),
                biz_transaction=bytes.fromhex(r[7][2:]),
                timestamp=r[8],
                prev_hash=bytes.fromhex(r[9][2:]),
                event_hash=bytes.fromhex(r[10][2:]),
            )
            for r in rows
        ]
        _, count, problems = verify_chain(links)
        blocks = {r[1]: r[12] for r in rows}
        expected += [(item_id, p.seq, blocks[p.seq], p.reason) for p in problems]
        assert dict((row[0], row[7]) for row in dump["items"])[item_id] == count
    assert len(expected) >= 4
    assert dump["chain_problems"] == sorted(expected)


def test_problems_name_the_block(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    for _ in range(3):
        chain.next_block()
    chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT, tamper="hash")
    _apply_all(store, chain)
    assert _problems(store) == [(item, 1, 4, "eventHash does not match the event's fields (altered)")]


def test_a_missing_event_is_one_break_not_one_per_later_event(store_url: str) -> None:
    """A node that left out one event: one problem, at the event after the gap, across batches and a restart of
    the store; the later events link and are not flagged; the count is the events stored."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    chain.record(item, BizStep.PACKING, Disposition.IN_PROGRESS)
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.next_block()
    for _ in range(3):
        chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    first = upto(chain.events, 4)
    store = Store.open(store_url)
    try:
        store.apply(events=first, headers=headers_upto(chain.headers, 4), checkpoint=chain.ref(4), prune_below=0)
    finally:
        store.close()
    for _ in range(20):  # later batches, through a new Store (no cache): still no more problems
        chain.next_block()
        chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    store = Store.open(store_url)
    try:
        rest = chain.events[len(first) :]
        stats = store.apply(events=rest, headers=chain.headers[4:], checkpoint=chain.ref(), prune_below=0)
        assert stats.problems == 0
        assert _problems(store) == [(item, 3, 4, "expected event #2, found #3 (missing or reordered)")]
        ok = _chain_ok(store)
        assert [seq for (_, seq), good in sorted(ok.items()) if not good] == [3]
        item_row = store.dump()["items"][0]
        assert (item_row[7], item_row[-1]) == (len(ok), False)  # the events stored; items.chain_ok
    finally:
        store.close()


def test_a_rollback_keeps_one_break_per_gap(store: Store) -> None:
    """The fold that rebuilds an item after a rollback checks seqs the same way as the batches did."""
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    chain.next_block()
    chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    chain.next_block()
    last = chain.record(item, BizStep.RECEIVING, Disposition.IN_PROGRESS)
    _apply_all(store, chain)
    store.rollback_to(chain.ref(3))  # the item is rebuilt from its stored events (fold_items)
    stats = store.apply(events=[last], headers=chain.headers[-1:], checkpoint=chain.ref(), prune_below=0)
    assert stats.problems == 0
    assert [p[1] for p in _problems(store)] == [2]


def test_refused_breaks_write_nothing_and_name_the_item(store: Store) -> None:
    chain = ChainBuilder()
    item = chain.register("urn:epc:id:sgtin:0614141.107346.1")
    chain.next_block()
    dropped = chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT)
    chain.events.remove(dropped)
    chain.record(item, BizStep.ARRIVING, Disposition.IN_TRANSIT)
    with pytest.raises(ChainBreakError) as caught:
        store.apply(
            events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0, refuse_breaks=True
        )
    assert [(b.item_id, b.seq, b.block_number) for b in caught.value.breaks] == [(item, 2, 2)]
    assert item in str(caught.value) and "block 2" in str(caught.value)
    assert store.checkpoint() is None
    assert store.counts()["item_events"] == 0


def _sale_gtins(store: Store) -> dict[tuple[str, int], int | None]:
    with store.engine.connect() as conn:
        return {
            (r.item_id, r.sale_seq): r.gtin
            for r in conn.execute(select(sales.c.item_id, sales.c.sale_seq, sales.c.gtin))
        }


def test_a_sale_row_has_its_items_gtin_however_the_item_was_known(store_url: str) -> None:
    """The analytics count sales by the GTIN on the sale row (revision 0034): an item registered in the same
    batch, one from an earlier batch held in the indexer's cache, and one read back from its items row by
    another process (no cache) all give their own GTIN; a sale of an item the index never saw has none."""
    chain = ChainBuilder()
    early = chain.register("urn:x:early", gtin=10614141073464)
    cached = chain.register("urn:x:cached", gtin=20614141073461)
    with Store.open(store_url) as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        chain.next_block()
        chain.sale(cached)
        same = chain.register("urn:x:same", gtin=30614141073468)
        chain.sale(same)
        apply_new(store, chain)
        assert _sale_gtins(store) == {(cached, 1): 20614141073461, (same, 1): 30614141073468}
    with Store.open(store_url) as store:  # a new process: the early item's state comes from its items row
        chain.next_block()
        chain.sale(early)
        stranger = "0x" + "ab" * 32
        chain.sale(stranger)
        apply_new(store, chain)
        gtins = _sale_gtins(store)
    assert gtins[(early, 1)] == 10614141073464
    assert gtins[(stranger, 1)] is None
