"""Read-your-writes: an answer that must show a write waits until the index reached the write's block.

The API never patches the index itself (the indexer alone writes the chain's rows): a route asked for
``?wait=true`` after a transaction polls the index's checkpoint until it is at or above the transaction's
block, or gives up with :class:`IndexBehindError` (a 504 problem saying the write succeeded).
"""

from __future__ import annotations

import time

from ledger_service.errors import IndexBehindError
from ledger_service.store.handle import Store

WAIT_POLL_S = 0.02
"""How often the checkpoint is read while waiting."""


def wait_for_block(store: Store, block_number: int, *, timeout: float) -> None:
    """Returns once the index's checkpoint is at or above ``block_number``.

    Raises :class:`IndexBehindError` (a 504 problem) after ``timeout`` seconds; the write itself
    succeeded, only the fresh read is not available yet. Blocking: call it from a sync route.
    """
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = store.checkpoint()
        if checkpoint is not None and checkpoint.number >= block_number:
            return
        if time.monotonic() >= deadline:
            indexed = None if checkpoint is None else checkpoint.number
            raise IndexBehindError(
                f"the transaction is in block {block_number}, but the index reached only "
                f"{'no block' if indexed is None else f'block {indexed}'} within {timeout:g} s; the write "
                "succeeded: read the resource again in a moment",
                block_number=block_number,
                indexed=indexed,
            )
        time.sleep(WAIT_POLL_S)
