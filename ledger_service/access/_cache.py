"""A short-lived, bounded, per-process cache of verified credentials (API keys and return tokens).

Verifying a credential reads the database; a busy client presents the same
one on every request. :func:`remember` keeps the verified principal for
:data:`VERIFIED_TTL_S` seconds, keyed by the credential's sha256 (the same hash
the database stores; never the plaintext). Only valid credentials are cached:
an unknown or revoked one is checked against the database every time.

Revocation: :func:`~ledger_service.access.revoke_api_key` and
:func:`~ledger_service.access.revoke_return_tokens` empty this process's cache
at once. A revocation made by another process (the ``ledger-admin keys revoke``
CLI, another API worker) is seen by :class:`~ledger_service.access.RevocationWatch`,
which the API polls every ``LEDGER_REVOCATION_POLL_S`` seconds (1 s by default) and
which empties the cache: that is the revocation delay of the API. Without the watch
(a process that does not run it) the delay is :data:`VERIFIED_TTL_S`.

A credential read from the database before a revocation cannot be cached after it:
:func:`remember` takes the :func:`generation` read before the database was asked, and
a cache emptied since then (:func:`clear`) refuses it. An entry never outlives the
credential's own expiry.
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
_generation = 0


def generation() -> int:
    """Changes whenever the cache is emptied: read it before verifying a credential against the database."""
    return _generation


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


def remember(
    secret_hash: str, principal: Actor | Consumer, *, since: int | None = None, until: int | None = None
) -> None:
    """Caches a principal just verified against the database: not if the cache was emptied after
    :func:`generation` returned ``since`` (a revocation may have come in between); never past ``until``
    (wall-clock unix seconds: the credential's expiry)."""
    lifetime = VERIFIED_TTL_S if until is None else min(VERIFIED_TTL_S, until - time.time())
    if lifetime <= 0:
        return
    expires = time.monotonic() + lifetime
    with _lock:
        if since is not None and since != _generation:
            return
        _entries[secret_hash] = (expires, principal)
        _entries.move_to_end(secret_hash)
        while len(_entries) > VERIFIED_MAX:
            _entries.popitem(last=False)


def forget_actors(key_id: int | None = None) -> None:
    """Drops the cached actors (only key ``key_id``'s if given): the key was revoked."""
    global _generation
    with _lock:
        _generation += 1
        for secret_hash, (_, principal) in list(_entries.items()):
            if isinstance(principal, Actor) and (key_id is None or principal.key_id == key_id):
                del _entries[secret_hash]


def forget_consumers(item_id: str | None = None) -> None:
    """Drops the cached consumers (only those of ``item_id`` if given): their tokens were revoked."""
    global _generation
    wanted = None if item_id is None else item_id.lower()
    with _lock:
        _generation += 1
        for secret_hash, (_, principal) in list(_entries.items()):
            if isinstance(principal, Consumer) and (wanted is None or principal.item_id == wanted):
                del _entries[secret_hash]


def clear() -> None:
    """Empties the cache (and starts a new :func:`generation`)."""
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()
