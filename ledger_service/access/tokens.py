"""Return tokens: a consumer's credential for one sold item, issued when the sale is recorded.

The plaintext is returned once (by POST /v1/sales) and stored as sha256 hex
with the item and the consumer's address. A token proves "I am the consumer
this item was sold to"; whether that sale is still the item's current one is
for the caller to check against the index.
"""

from __future__ import annotations

import re
import time

from eth_utils.address import is_address

from ledger_service.access import _cache
from ledger_service.access._model import Consumer
from ledger_service.access._secrets import RETURN_TOKEN_PREFIX, hash_secret, new_secret, well_formed
from ledger_service.errors import AuthenticationError, InvalidRequestError
from ledger_service.store import api_queries as q
from ledger_service.store.store import Store

SCHEME = "ReturnToken"
_ITEM_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def issue_return_token(*, store: Store, item_id: str, consumer: str, now: int | None = None) -> str:
    """A new token for ``consumer`` and ``item_id``; the plaintext exists only in the return value."""
    if not _ITEM_ID.match(item_id):
        raise InvalidRequestError(f"{item_id!r} is not an item id (0x + 64 hex digits)")
    if not is_address(consumer):
        raise InvalidRequestError(f"{consumer!r} is not an account address (0x + 40 hex digits)")
    plaintext = new_secret(RETURN_TOKEN_PREFIX)
    q.insert_return_token(
        store,
        token_hash=hash_secret(plaintext),
        item_id=item_id,
        consumer=consumer,
        created_at=int(time.time()) if now is None else now,
    )
    return plaintext


def verify_return_token(*, store: Store, presented: str) -> Consumer:
    """The consumer holding ``presented``; :class:`AuthenticationError` if it is malformed, unknown or revoked.

    A valid token is remembered for :data:`~ledger_service.access._cache.VERIFIED_TTL_S` seconds (a
    revocation in another process takes effect here within that delay; in this one, at once)."""
    cached = cached_return_token(presented)
    if cached is not None:
        return cached
    secret_hash = hash_secret(presented)
    row = q.return_token_by_hash(store, secret_hash)
    if row is None:
        raise AuthenticationError("the return token is not valid", scheme=SCHEME)
    if row.revoked_at is not None:
        raise AuthenticationError("the return token was revoked", scheme=SCHEME)
    consumer = Consumer(item_id=row.item_id, address=row.consumer)
    _cache.remember(secret_hash, consumer)
    return consumer


def cached_return_token(presented: str) -> Consumer | None:
    """The consumer of ``presented`` if it was verified less than the cache's TTL ago (no database read),
    else None; :class:`AuthenticationError` if ``presented`` is malformed."""
    if not well_formed(presented, RETURN_TOKEN_PREFIX):
        raise AuthenticationError(
            f"the return token is malformed: tokens look like {RETURN_TOKEN_PREFIX}<43 characters>", scheme=SCHEME
        )
    found = _cache.lookup(hash_secret(presented))
    return found if isinstance(found, Consumer) else None


def revoke_return_tokens(*, store: Store, item_id: str, consumer: str | None = None, now: int | None = None) -> int:
    """Revokes the item's tokens (only ``consumer``'s if given), e.g. when the item is sold again."""
    revoked = q.revoke_return_tokens(
        store, item_id=item_id, consumer=consumer, revoked_at=int(time.time()) if now is None else now
    )
    _cache.forget_consumers(item_id)
    return revoked
