"""A short-lived, bounded, per-process cache of verified credentials (API keys and return tokens).

Verifying a credential reads the database; a busy client presents the same
one on every request. :func:`remember` keeps the verified principal for
:data:`VERIFIED_TTL_S` seconds, keyed by the credential's sha256 (the same hash
the database stores; never the plaintext). Only valid credentials are cached:
an unknown or revoked one is checked against the database every time.

Revocation: :func:`~ledger_service.access.revoke_api_key` and
:func:`~ledger_service.access.revoke_return_tokens` empty this process's cache
at once. A revocation made by another process (the ``ledger-admin keys revoke``
CLI, another API worker) takes effect here within :data:`VERIFIED_TTL_S` seconds:
that is the revocation delay of the API.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ledger_service.access._model import Actor, Consumer

VERIFIED_TTL_S = 10.0
"""How long a verified credential is believed without asking the database (the cross-process revocation
delay)."""
VERIFIED_MAX = 4096
"""At most this many credentials are cached (the least recently verified ones are dropped first)."""

_entries: OrderedDict[str, tuple[float, Actor | Consumer]] = OrderedDict()
_lock = threading.Lock()


def lookup(secret_hash: str) -> Actor | Consumer | None:
    """The principal verified for ``secret_hash`` less than :data:`VERIFIED_TTL_S` ago, or None."""
    with _lock:
        entry = _entries.get(secret_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del _entries[secret_hash]
            return None
        return entry[1]


def remember(secret_hash: str, principal: Actor | Consumer) -> None:
    """Caches a principal just verified against the database."""
    expires = time.monotonic() + VERIFIED_TTL_S
    with _lock:
        _entries[secret_hash] = (expires, principal)
        _entries.move_to_end(secret_hash)
        while len(_entries) > VERIFIED_MAX:
            _entries.popitem(last=False)


def forget_actors(key_id: int | None = None) -> None:
    """Drops the cached actors (only key ``key_id``'s if given): the key was revoked."""
    with _lock:
        for secret_hash, (_, principal) in list(_entries.items()):
            if isinstance(principal, Actor) and (key_id is None or principal.key_id == key_id):
                del _entries[secret_hash]


def forget_consumers(item_id: str | None = None) -> None:
    """Drops the cached consumers (only those of ``item_id`` if given): their tokens were revoked."""
    wanted = None if item_id is None else item_id.lower()
    with _lock:
        for secret_hash, (_, principal) in list(_entries.items()):
            if isinstance(principal, Consumer) and (wanted is None or principal.item_id == wanted):
                del _entries[secret_hash]


def clear() -> None:
    """Empties the cache."""
    with _lock:
        _entries.clear()
