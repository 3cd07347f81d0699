"""The metrics' scrape-time reads (store/returns.py): returns by state and escrow still held by token, exact
(uint256 amounts summed without rounding), on SQLite and PostgreSQL, and answered from their indexes: SQLite's
plan reads ``ix_returns_state`` and ``ix_returns_unsettled``, never the returns table itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from ledger_service.core.codes import ReturnState
from ledger_service.store import Store
from ledger_service.store.returns import escrow_outstanding, return_counts_by_state
from tests.ledger_service.store.builders import TOKEN, ChainBuilder, addr

BIG = 2**200 + 7
"""An amount no float holds exactly: the sum must still be exact."""


def _returns(chain: ChainBuilder) -> None:
    chain.policy(addr(2), 1)
    rids = []
    for n in range(5):
        item = chain.register(f"urn:epc:id:sgtin:0614141.107346.{n}")
        chain.next_block()
        chain.sale(item)
        rids.append(chain.authorize(item, 1, amount=BIG + n))
    chain.next_block()
    chain.transition(rids[0], ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED)
    chain.transition(rids[1], ReturnState.IN_TRANSIT, ReturnState.AUTHORIZED)
    chain.next_block()
    chain.transition(rids[1], ReturnState.ACCEPTED, ReturnState.IN_TRANSIT)
    chain.settle(rids[1], BIG + 1, 0)
    chain.next_block()


def test_counts_by_state_and_escrow_held_are_exact(store: Store) -> None:
    assert return_counts_by_state(store) == {}
    assert escrow_outstanding(store) == {}
    chain = ChainBuilder()
    _returns(chain)
    store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
    assert return_counts_by_state(store) == {
        ReturnState.AUTHORIZED: 3,
        ReturnState.IN_TRANSIT: 1,
        ReturnState.ACCEPTED: 1,
    }
    # the settled return's deposit is no longer held; the four others are, to the last unit
    assert escrow_outstanding(store) == {TOKEN.lower(): 4 * BIG + 0 + 2 + 3 + 4}


def test_sqlite_answers_both_from_their_indexes(tmp_path: Path) -> None:
    chain = ChainBuilder()
    _returns(chain)
    with Store.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        store.apply(events=chain.events, headers=chain.headers, checkpoint=chain.ref(), prune_below=0)
        seen: list[tuple[str, Any]] = []

        def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
            if "FROM returns" in statement:
                seen.append((statement, parameters))

        event.listen(store.engine, "before_cursor_execute", before)
        try:
            return_counts_by_state(store)
            escrow_outstanding(store)
        finally:
            event.remove(store.engine, "before_cursor_execute", before)
        assert len(seen) == 2
        with store.engine.connect() as conn:
            plans = [
                " / ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in seen
            ]
    assert "USING COVERING INDEX ix_returns_state" in plans[0], plans[0]
    assert "USING COVERING INDEX ix_returns_unsettled" in plans[1], plans[1]
