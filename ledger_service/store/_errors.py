"""Errors of the store (re-exported by :mod:`ledger_service.store`)."""

from __future__ import annotations

from ledger_service.errors import FatalError, RetryableError


class StoreError(FatalError):
    """The index refuses the operation: another chain's index, input that contradicts stored rows, a bad range."""


class StoreUnavailableError(RetryableError):
    """The database could not be reached or was busy; the same call may succeed later."""


class StoreFullError(FatalError):
    """The database's disk (or SQLite's page limit) is full: the transaction was rolled back, nothing committed is
    lost, and retrying cannot help until a person frees space, so the indexer stops instead of waiting."""
