"""Idempotency-Key records (revision 0002): one concurrent claim wins, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store, idempotency
from tests.support.threads import together


def test_exactly_one_concurrent_claim_of_an_idempotency_key_wins(store: Store) -> None:
    results = together(
        12,
        lambda _: idempotency.claim_idempotency_key(
            store, actor="key:1", key="k", method="POST", path="/v1/x", request_hash="h" * 64, now=100, lease_s=300
        ),
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, idempotency.IdempotencyRow) for r in results if r is not None)
    idempotency.complete_idempotency_key(store, actor="key:1", key="k", status=201, response_body='{"a":1}', now=101)
    row = idempotency.get_idempotency_key(store, actor="key:1", key="k")
    assert row is not None and (row.status, row.response_body, row.completed_at) == (201, '{"a":1}', 101)
    assert idempotency.purge_idempotency_keys(store, created_before=100) == 0
    assert idempotency.purge_idempotency_keys(store, created_before=101) == 1
