"""The item queries find an item's events through the (item_key, seq) index, never by scanning item_events.

item_events has no index on item_id (revision 0004): a query that filtered on item_id alone would still be
right, and read the whole table. SQLite's EXPLAIN QUERY PLAN of every statement the queries send shows which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from ledger_service.core.codes import BizStep, Disposition, ReturnState
from ledger_service.core.events import ItemEventRecorded
from ledger_service.store import Store, items, returns, sales
from ledger_service.store._db import read_transaction
from ledger_service.store._folds import fold_items
from ledger_service.store.items import item_audit_rows
from ledger_service.store.sales import item_facts
from ledger_service.store.tables import item_key
from tests.ledger_service.store.builders import DAY, ChainBuilder, addr


@contextmanager
def _statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) of the statements sent on ``store``'s engine meanwhile that read item_events."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "item_events" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def _plans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    with store.engine.connect() as conn:
        return [
            " / ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements
        ]


def test_item_queries_use_the_item_key_index(tmp_path: Path) -> None:
    chain = ChainBuilder()
    chain.policy(addr(2), 1)
    others = [chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}", merchant=addr(2)) for n in range(20)]
    item = chain.register("urn:x:planned", merchant=addr(2))
    chain.next_block()
    chain.sale(item, merchant=addr(2), consumer=addr(6))
    chain.record(item, BizStep.RETAIL_SELLING, Disposition.RETAIL_SOLD)
    chain.next_block(seconds=DAY)
    chain.record(item, BizStep.ARRIVING, Disposition.RETAIL_SOLD)
    rid = chain.authorize(item, 1)
    chain.next_block()
    chain.transition(rid, ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED, deadline=chain.time + 7 * DAY)
    chain.record(item, BizStep.TRANSPORTING, Disposition.IN_TRANSIT, biz_transaction=rid)
    for other in others:
        chain.record(other, BizStep.SHIPPING, Disposition.IN_TRANSIT)

    with Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        store.engine.dispose()  # a fresh connection: ANALYZE-free plans, as on a new index
        calls: list[Callable[[], object]] = [
            lambda: returns.return_detail(store, rid),
            lambda: items.item(store, item),
            lambda: item_audit_rows(store, item),
            lambda: item_facts(store, item_id=item, role="0x" + "00" * 32),
        ]
        with _statements(store) as statements:
            for call in calls:
                assert call() is not None
            with read_transaction(store.engine) as conn:
                recorded = sum(isinstance(ev, ItemEventRecorded) and ev.item_id == item for ev in chain.events)
                assert fold_items(conn, [item, others[0]])[item].event_count == recorded
        assert len(statements) >= len(calls) + 1
        # the eligibility read runs its compiled statement on the driver's cursor (no engine event)
        row = sales._compile("row", sales._ROW, store.engine.dialect, {"item_id": "", "item_key": 0})
        statements.append((row.sql, row.args({"item_id": item, "item_key": item_key(item)})))
        for plan in _plans(store, statements):
            assert "ix_item_events_item" in plan, plan
            assert "SCAN item_events" not in plan, plan
