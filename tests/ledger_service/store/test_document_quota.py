"""The daily upload quota (revision 0007): never exceeded under concurrent reservations, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_service.store import Store
from ledger_service.store.document_quota import day_of, release_upload, reserve_upload
from tests.support.store_reads import uploaded_bytes
from tests.support.threads import together

DAY = day_of(1_800_000_000)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def test_reservations_stop_at_the_limit_and_releases_give_bytes_back(store: Store) -> None:
    assert reserve_upload(store, principal="key:1", day=DAY, size=600, limit=1000)
    assert not reserve_upload(store, principal="key:1", day=DAY, size=401, limit=1000)
    assert reserve_upload(store, principal="key:2", day=DAY, size=1000, limit=1000)  # another caller's own quota
    release_upload(store, principal="key:1", day=DAY, size=600)
    assert uploaded_bytes(store, principal="key:1", day=DAY) == 0
    assert reserve_upload(store, principal="key:1", day=DAY, size=1000, limit=1000)
    assert reserve_upload(store, principal="key:1", day=DAY + 1, size=1000, limit=1000)  # a new day
    assert uploaded_bytes(store, principal="key:1", day=DAY) == 0  # earlier days are forgotten


def test_concurrent_reservations_never_pass_the_limit(store: Store) -> None:
    results = together(12, lambda _: reserve_upload(store, principal="consumer:0xabc", day=DAY, size=300, limit=1000))
    assert sum(r is True for r in results) == 3, results
    assert uploaded_bytes(store, principal="consumer:0xabc", day=DAY) == 900
