"""Policy reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store
from ledger_service.store import policies as q
from tests.ledger_service.store.builders import ChainBuilder, addr, apply_new
from tests.support.store_reads import policy_version

MERCHANT, OTHER_MERCHANT = addr(2), addr(9)


def test_policy_versions_newest_first(store: Store) -> None:
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.next_block()
    chain.policy(MERCHANT, 2, ship_by_days=10)
    chain.policy(OTHER_MERCHANT, 1)
    apply_new(store, chain)
    versions = q.policy_versions(store, MERCHANT.upper().replace("0X", "0x"))
    assert [p.version for p in versions] == [2, 1]
    assert versions[0].ship_by_days == 10
    assert policy_version(store, merchant=MERCHANT, version=1) == versions[1]
    assert policy_version(store, merchant=MERCHANT, version=3) is None
    assert q.policy_versions(store, addr(30)) == ()
