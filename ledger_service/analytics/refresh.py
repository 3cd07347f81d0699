"""Keeps the analytics rollups current: one incremental refresh folds what changed since the last one
(:func:`ledger_service.store.analytics.refresh_rollups`), with the comments' theme terms from
:mod:`ledger_service.analytics.themes`. API workers run it every ``LEDGER_ANALYTICS_REFRESH_S`` seconds
(api/upkeep.py); ``ledger-admin``-style callers and tests call it directly."""

from __future__ import annotations

import time

from ledger_service.analytics.themes import terms
from ledger_service.store.analytics import RefreshStats, refresh_rollups
from ledger_service.store.handle import Store


def refresh(store: Store, *, now: int | None = None) -> RefreshStats:
    """Folds every change since the last refresh into the rollups."""
    return refresh_rollups(store, terms=terms, now=int(time.time()) if now is None else now)
