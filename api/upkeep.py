"""Background upkeep of an API worker, for as long as its application runs (:func:`upkeep` in the lifespan).

- Revocations: every ``LEDGER_REVOCATION_POLL_S`` seconds a
  :class:`~ledger_service.access.RevocationWatch` check empties this worker's credential cache if a
  credential was revoked anywhere (``ledger-admin keys revoke``, another worker, a resale): a revoked key is
  refused by every worker within that delay, and the hot path does no extra work.
- Idempotency records: every ``LEDGER_IDEMPOTENCY_PURGE_INTERVAL_S`` seconds the records older than
  ``LEDGER_IDEMPOTENCY_TTL_S`` are deleted (a record past its TTL is already ignored by a retry; the purge
  keeps the table small). Several workers purging at once delete the same rows: harmless.
- Analytics: every ``LEDGER_ANALYTICS_REFRESH_S`` seconds the rollups fold what changed since their last
  refresh (:mod:`ledger_service.analytics.refresh`); workers refreshing at once take turns (a lock), and the
  second finds nothing new.
- Index freshness: every ``LEDGER_INDEX_FRESHNESS_POLL_S`` seconds ``/readyz``'s checks refresh this worker's
  :class:`~api.staleness.IndexFreshness` (the ``X-Index-Block`` / ``X-Index-Stale`` headers).

A failed round (database away) is logged and tried again at the next interval; it never stops the worker.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import structlog

from api.staleness import IndexFreshness, watch_freshness
from ledger_service.access import RevocationWatch
from ledger_service.analytics.refresh import refresh
from ledger_service.chain.signers import ChainContext
from ledger_service.settings import Settings
from ledger_service.store.handle import Store
from ledger_service.store.idempotency import purge_idempotency_keys

log = structlog.get_logger("api.upkeep")


def purge_expired_idempotency(store: Store, *, ttl_s: int, now: int | None = None) -> int:
    """Deletes the idempotency records created ``ttl_s`` seconds ago or earlier; returns how many."""
    clock = int(time.time()) if now is None else now
    return purge_idempotency_keys(store, created_before=clock - ttl_s + 1)


async def _every(interval_s: float, what: str, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        await anyio.sleep(interval_s)
        try:
            await work()
        except Exception:  # the next round tries again; a worker must not stop over its upkeep
            log.error("upkeep failed", what=what, exc_info=True)


@asynccontextmanager
async def upkeep(
    *, store: Store, settings: Settings, chain: ChainContext, freshness: IndexFreshness
) -> AsyncIterator[None]:
    """Runs the upkeep tasks in the background while the body runs; cancels them when it ends."""
    watch = await anyio.to_thread.run_sync(RevocationWatch, store)

    async def revocations() -> None:
        await anyio.to_thread.run_sync(watch.check)

    async def purge() -> None:
        purged = await anyio.to_thread.run_sync(
            lambda: purge_expired_idempotency(store, ttl_s=settings.idempotency_ttl_s)
        )
        if purged:
            log.info("purged expired idempotency records", count=purged)

    async def analytics() -> None:
        await anyio.to_thread.run_sync(lambda: refresh(store))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_every, settings.revocation_poll_s, "revocation check", revocations)
        tasks.start_soon(_every, settings.idempotency_purge_interval_s, "idempotency purge", purge)
        tasks.start_soon(_every, settings.analytics_refresh_s, "analytics refresh", analytics)
        tasks.start_soon(functools.partial(watch_freshness, freshness, store=store, chain=chain, settings=settings))
        try:
            yield
        finally:
            tasks.cancel_scope.cancel()
