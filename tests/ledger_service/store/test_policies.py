"""Policy reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from ledger_service.store import Store
from ledger_service.store import policies as q
from tests.ledger_service.store.builders import ChainBuilder, addr, apply_new
from tests.support.store_reads import policy_version

MERCHANT, OTHER_MERCHANT = addr(2), addr(9)


def _publish_two_merchants(store: Store) -> None:
    """Two versions of MERCHANT's policy (the second ships by 10 days), one of OTHER_MERCHANT's."""
    chain = ChainBuilder()
    chain.policy(MERCHANT, 1)
    chain.next_block()
    chain.policy(MERCHANT, 2, ship_by_days=10)
    chain.policy(OTHER_MERCHANT, 1)
    apply_new(store, chain)


def test_policy_versions_newest_first(store: Store) -> None:
    _publish_two_merchants(store)
    versions = q.policy_versions(store, MERCHANT.upper().replace("0X", "0x"))
    assert [p.version for p in versions] == [2, 1]
    assert versions[0].ship_by_days == 10
    assert policy_version(store, merchant=MERCHANT, version=1) == versions[1]
    assert policy_version(store, merchant=MERCHANT, version=3) is None
    assert q.policy_versions(store, addr(30)) == ()


def test_policy_versions_of_several_merchants_equal_each_one_read_alone(store: Store) -> None:
    _publish_two_merchants(store)
    found = q.policy_versions_of(store, [MERCHANT.upper().replace("0X", "0x"), OTHER_MERCHANT, addr(30)])
    assert found == {
        MERCHANT: q.policy_versions(store, MERCHANT),
        OTHER_MERCHANT: q.policy_versions(store, OTHER_MERCHANT),
    }
    assert [p.version for p in found[MERCHANT]] == [2, 1]
    assert q.policy_versions_of(store, []) == {}
