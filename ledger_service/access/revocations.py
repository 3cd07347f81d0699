"""How a revocation made in one process reaches the credential cache of every other.

Every revocation adds a ``credential_revocations`` row in the transaction that revokes
(:mod:`ledger_service.store.credentials`). A :class:`RevocationWatch` remembers the
latest row's id; :meth:`RevocationWatch.check` reads it again (one indexed ``max``, no
matter how many credentials exist) and empties this process's cache when it changed. The
API runs the check every ``LEDGER_REVOCATION_POLL_S`` seconds in the background, so the
hot path pays nothing and a key revoked by ``ledger-admin keys revoke`` is refused by every
worker within that delay.
"""

from __future__ import annotations

from ledger_service.access import _cache
from ledger_service.store import credentials as q
from ledger_service.store.handle import Store


class RevocationWatch:
    """Empties the credential cache when a credential was revoked anywhere since the last check."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seen = q.latest_revocation(store)

    def check(self) -> bool:
        """Reads the latest revocation (blocking: call it from a worker thread); whether the cache was emptied."""
        latest = q.latest_revocation(self._store)
        if latest == self._seen:
            return False
        _cache.clear()
        self._seen = latest
        return True
