"""Fixtures of the notification worker tests: the store tests' open :class:`Store` on each database."""

from tests.ledger_service.store.conftest import store

__all__ = ["store"]
