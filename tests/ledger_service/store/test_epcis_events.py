"""The EPCIS query over the index: captured events and the events only the chain holds, merged in time order,
found through indexes whatever the parameters (SQLite's query plans show it), paged by keyset, and a chain
event found by its position; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ledger_service.core.codes import BizStep, Disposition
from ledger_service.store import Store
from ledger_service.store.epcis_events import (
    CHAIN,
    EventClaim,
    EventQuery,
    FoundEvent,
    PageKey,
    Recorded,
    claim_events,
    event_at,
    mark_recorded,
    query_events,
)
from tests.ledger_service.store.builders import ChainBuilder, addr, h

SHOP, OTHER = addr(2), addr(4)
ITEMS = 12


def uri(n: int) -> str:
    return f"urn:epc:id:sgtin:0614141.{100000 + n % 3}.{n}"


def _index(store: Store) -> ChainBuilder:
    """ITEMS items (every third of OTHER), each commissioned and shipped by capture, then sold by the escrow
    (a chain-only event with the order's digest as its business transaction)."""
    chain = ChainBuilder()
    ids = [chain.register(uri(n), merchant=OTHER if n % 3 == 0 else SHOP) for n in range(ITEMS)]
    chain.next_block()
    shipped = [chain.record(item, BizStep.SHIPPING, Disposition.IN_TRANSIT) for item in ids]
    chain.next_block(seconds=60)
    for n, item in enumerate(ids):
        chain.sale(item, merchant=OTHER if n % 3 == 0 else SHOP)
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    claims = [
        EventClaim(
            hash_id=f"ni:///sha-256;{hashlib.sha256(item.encode()).hexdigest()}?ver=CBV2.0",
            event_id=None,
            event_index=n,
            event_type="ObjectEvent",
            action="OBSERVE",
            event_time=ev.timestamp * 1000 - 500,
            time_zone_offset="+00:00",
            biz_step="shipping",
            disposition="in_transit",
            read_point=None,
            document=h("doc"),
            body='{"type":"ObjectEvent"}',
            namespaces="[]",
            epcs=((item, 0, uri(n)),),
            biz_transactions=(("po", f"PO-{n}"),),
        )
        for n, (item, ev) in enumerate(zip(ids, shipped, strict=True))
    ]
    keys = claim_events(store, capture_id="cap_" + "0" * 32, actor=addr(1), claims=claims)
    mark_recorded(
        store,
        [
            Recorded(keys[c.hash_id], ev.pos.tx_hash, ev.pos.block_number, {ev.item_id: ev.seq})
            for c, ev in zip(claims, shipped, strict=True)
        ],
        record_time_ms=0,
    )
    return chain


def _all(store: Store, query: EventQuery, per_page: int) -> list[FoundEvent]:
    found: list[FoundEvent] = []
    after: PageKey | None = None
    while True:
        page, after = query_events(store, query, after=after, limit=per_page)
        found += page
        if after is None:
            return found


def _steps(found: list[FoundEvent]) -> list[tuple[str, int]]:
    return [(f.rows[0].record.item_id, f.rows[0].record.biz_step) for f in found]


def test_every_query_merges_both_sources_in_time_order_and_pages_by_keyset(store: Store) -> None:
    chain = _index(store)
    first = next(iter(chain.items))
    mine = _all(store, EventQuery(epcs=(uri(0),)), per_page=100)
    assert [(f.rows[0].record.seq, f.hash_id is None) for f in mine] == [(0, True), (1, False), (2, True)]
    everything = _all(store, EventQuery(), per_page=1000)
    assert len(everything) == 3 * ITEMS  # registration and sale from the chain, the shipping captured
    assert len(_all(store, EventQuery(), per_page=1000)) == len(everything)
    for per_page in (1, 5):
        assert _steps(_all(store, EventQuery(), per_page=per_page)) == _steps(everything)
    times = [f.key for f in everything]
    assert times == sorted(times)
    pattern = _all(store, EventQuery(any_epc_prefixes=("urn:epc:id:sgtin:0614141.100001.",)), per_page=2)
    assert {f.rows[0].record.item_id for f in pattern} == {i for n, i in enumerate(chain.items) if n % 3 == 1}
    shop = _all(store, EventQuery(merchant=SHOP), per_page=3)
    shops = [i for n, i in enumerate(chain.items) if n % 3 != 0]
    assert sorted(f.rows[0].record.item_id for f in shop) == sorted(shops * 3)
    order = h("order", first, 1)
    [sale] = _all(store, EventQuery(biz_transactions=(("po", "x"),), biz_transaction_digests=(order,)), per_page=5)
    assert sale.key.source == CHAIN and sale.rows[0].record.biz_transaction == order
    [shipped] = _all(store, EventQuery(biz_transactions=(("po", "PO-0"),), biz_transaction_digests=("0x00",)), 5)
    assert shipped.hash_id is not None and shipped.rows[0].record.item_id == first


def test_a_chain_event_is_found_by_its_position_and_its_event_hash(store: Store) -> None:
    chain = _index(store)
    sale = _all(store, EventQuery(epcs=(uri(1),), biz_step_codes=(int(BizStep.RETAIL_SELLING),)), 10)
    [record] = [r.record for f in sale for r in f.rows if r.record.biz_step == BizStep.RETAIL_SELLING]
    found = event_at(
        store, block_number=record.block_number, log_index=record.log_index, event_hash_ok=record.event_hash.__eq__
    )
    assert found is not None and found.hash_id is None and found.rows[0].record == record
    assert (
        event_at(store, block_number=record.block_number, log_index=record.log_index, event_hash_ok=lambda _: False)
        is None
    )
    assert event_at(store, block_number=10**9, log_index=0, event_hash_ok=lambda _: True) is None
    # the position of a captured event's item event: the event as captured
    shipped = next(ev for ev in chain.events if getattr(ev, "biz_step", None) == BizStep.SHIPPING)
    found = event_at(store, block_number=shipped.pos.block_number, log_index=shipped.pos.log_index, event_hash_ok=bool)
    assert found is not None and found.hash_id is not None


@contextmanager
def _selects(store: Store) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


@pytest.mark.parametrize(
    "query",
    [
        EventQuery(epcs=(uri(1),)),
        EventQuery(ge_event_time=0),
        EventQuery(any_epc_prefixes=("urn:epc:id:sgtin:0614141.100001.",)),
        EventQuery(biz_transactions=(("po", "PO-1"),), biz_transaction_digests=(h("order", "x", 1),)),
        EventQuery(merchant=SHOP, ge_event_time=0),
        EventQuery(item_id="0x" + "ab" * 32),
    ],
    ids=["match_epc", "time_page", "pattern", "biz_transaction", "merchant", "item"],
)
def test_no_query_scans_a_table(tmp_path: Path, query: EventQuery) -> None:
    assert _scans(tmp_path, query) == []


def test_a_step_alone_is_read_in_time_order_up_to_the_page(tmp_path: Path) -> None:
    """bizStep, disposition and readPoint have few values, each on many events: no index of theirs would be
    selective. Such a query reads the events in the answer's order (the time index, the chain's order) and
    stops at the page's end, as a page of every event does."""
    query = EventQuery(biz_step_codes=(int(BizStep.RETAIL_SELLING),), biz_steps=("retail_selling",))
    assert set(_scans(tmp_path, query)) <= {
        "SCAN epcis_events USING INDEX ix_epcis_events_event_time",
        "SCAN item_events USING INDEX sqlite_autoindex_item_events_1",
    }


def _scans(tmp_path: Path, query: EventQuery) -> list[str]:
    """The SCAN steps of the plans of every statement two pages of ``query`` send (SQLite)."""
    found: list[str] = []
    with Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        _index(store)
        store.engine.dispose()  # plans without ANALYZE, as on a new index
        with _selects(store) as statements:
            query_events(store, query, after=PageKey(0, CHAIN, 0), limit=3)
            query_events(store, query, after=None, limit=3)
        assert statements
        with store.engine.connect() as conn:
            for sql, params in statements:
                plan = " / ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                found += [step for step in plan.split(" / ") if step.startswith("SCAN") and "CONSTANT ROW" not in step]
    return found
