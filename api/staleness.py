"""How current the index is, on every answer: reads keep answering from the index while the node is down, and
say how old what they show may be.

- ``X-Index-Block: <n>``: the index's checkpoint; the answer reflects the chain up to block ``n``.
- ``X-Index-Stale: <seconds>``: present exactly while ``/readyz`` fails (its own checks,
  :func:`api.health.readiness`: the node unreachable or on another chain, the index more than
  ``LEDGER_READY_MAX_LAG_BLOCKS`` behind, the database away); the seconds since the indexed block's time, i.e.
  the most the answer may lag the chain (writes need the node: a 503 problem while it is down).

Each worker keeps its view in an :class:`IndexFreshness` (``app.state.freshness``), refreshed every
``LEDGER_INDEX_FRESHNESS_POLL_S`` by its upkeep (:func:`watch_freshness`); the outermost layer
(:class:`api.observability.Observed`) adds its headers to every answer, so an answer costs no database or node
call: the headers may lag ``/readyz`` by that interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio

from api.health import readiness
from ledger_service.chain.signers import ChainContext
from ledger_service.settings import Settings
from ledger_service.store.checkpoint import index_head
from ledger_service.store.handle import Store

BLOCK_HEADER = b"x-index-block"
STALE_HEADER = b"x-index-stale"


@dataclass(slots=True)
class IndexFreshness:
    """One worker's view of the index: its block, that block's time, and whether ``/readyz`` passed."""

    block: int | None = None
    block_time: float | None = None
    """The indexed block's timestamp (or, if its header is not stored, when this worker last saw the index
    current)."""
    stale: bool = False

    def headers(self, now: float) -> list[tuple[bytes, bytes]]:
        """The headers of an answer given at ``now`` (none before the first refresh)."""
        if self.block is None:
            return []
        found = [(BLOCK_HEADER, str(self.block).encode())]
        if self.stale:
            since = now if self.block_time is None else self.block_time
            found.append((STALE_HEADER, str(max(0, int(now - since))).encode()))
        return found

    async def refresh(self, *, store: Store, chain: ChainContext, settings: Settings) -> None:
        """Runs ``/readyz``'s checks and reads the indexed block's time (kept from before if the database is
        away)."""
        checks = await readiness(store=store, chain=chain, settings=settings)
        ready = all(check.ok for check in checks)
        if checks[0].ok:
            try:
                head = await anyio.to_thread.run_sync(index_head, store)
            except Exception:  # the database went away between the checks: keep the last known block
                head, ready = None, False
            if head is not None:
                self.block = head.block_number
                if head.timestamp is not None:
                    self.block_time = float(head.timestamp)
                elif ready:
                    self.block_time = time.time()
        self.stale = not ready


async def watch_freshness(freshness: IndexFreshness, *, store: Store, chain: ChainContext, settings: Settings) -> None:
    """Refreshes ``freshness`` now and then every ``LEDGER_INDEX_FRESHNESS_POLL_S`` (an upkeep task)."""
    while True:
        await freshness.refresh(store=store, chain=chain, settings=settings)
        await anyio.sleep(settings.index_freshness_poll_s)
