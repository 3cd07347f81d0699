"""The index head as readers see it, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store
from ledger_service.store import checkpoint as q
from tests.ledger_service.store.builders import ChainBuilder, apply_new


def test_index_head_is_the_checkpoint_with_its_time(store: Store) -> None:
    assert q.index_head(store) is None
    chain = ChainBuilder()
    chain.register("urn:x:1")
    chain.next_block(seconds=30)
    apply_new(store, chain)
    head = q.index_head(store)
    assert head == q.IndexHead(chain.number, chain.headers[-1].hash, chain.time)
