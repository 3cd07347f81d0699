"""Fixtures of the signals tests: an open :class:`Store` on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_service.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An empty, migrated index (runs once on SQLite and once on PostgreSQL)."""
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
