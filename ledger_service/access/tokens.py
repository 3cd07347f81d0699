"""Return tokens: a consumer's credential for one sale of one item, issued when the sale is recorded.

The plaintext is returned once (by POST /v1/sales) and stored as sha256 hex
with the item, the consumer's address, the sale's number and an expiry. A token proves "I am the consumer of
sale N of this item" and stops working:

- when the item is sold again: a token issued for the new sale revokes the earlier ones (same transaction),
  and a token whose sale is older than the item's current sale in the index is refused (a resale recorded
  on-chain without this service);
- at its expiry (``LEDGER_RETURN_TOKEN_TTL_S`` after the sale, default 730 days: longer than the longest return
  window a policy may set plus its ship-by, inspect-by and dispute periods);
- when revoked (:func:`revoke_return_tokens`).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from eth_utils.address import is_address

from ledger_service.access import _cache
from ledger_service.access._model import Consumer
from ledger_service.access._secrets import RETURN_TOKEN_PREFIX, hash_secret, new_secret, well_formed
from ledger_service.errors import AuthenticationError, InvalidRequestError
from ledger_service.store import credentials as q
from ledger_service.store import sales
from ledger_service.store.handle import Store

SCHEME = "ReturnToken"
DEFAULT_TTL_S = 730 * 24 * 3600
"""The default of ``LEDGER_RETURN_TOKEN_TTL_S``."""
_ITEM_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def issue_return_token(
    *,
    store: Store,
    item_id: str,
    consumer: str,
    sale_seq: int,
    ttl_s: int = DEFAULT_TTL_S,
    now: int | None = None,
) -> str:
    """A new token for ``consumer`` and sale ``sale_seq`` of ``item_id``, valid ``ttl_s`` seconds; the item's
    tokens of earlier sales are revoked. The plaintext exists only in the return value."""
    if not _ITEM_ID.match(item_id):
        raise InvalidRequestError(f"{item_id!r} is not an item id (0x + 64 hex digits)")
    if not is_address(consumer):
        raise InvalidRequestError(f"{consumer!r} is not an account address (0x + 40 hex digits)")
    if sale_seq < 1 or ttl_s < 1:
        raise InvalidRequestError("a return token needs a sale number and a lifetime of at least 1")
    created = int(time.time()) if now is None else now
    plaintext = new_secret(RETURN_TOKEN_PREFIX)
    revoked = q.insert_return_token(
        store,
        token_hash=hash_secret(plaintext),
        item_id=item_id,
        consumer=consumer,
        sale_seq=sale_seq,
        created_at=created,
        expires_at=created + ttl_s,
    )
    if revoked:
        _cache.forget_consumers(item_id)
    return plaintext


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def verify_return_token(*, store: Store, presented: str, now: int | None = None) -> Consumer:
    """The consumer holding ``presented``; :class:`AuthenticationError` if it is malformed, unknown, revoked,
    expired, or for an earlier sale of the item than the index's current one.

    A valid token is remembered for :data:`~ledger_service.access._cache.VERIFIED_TTL_S` seconds at most (see
    :mod:`ledger_service.access._cache` for how a revocation reaches the cache)."""
    cached = cached_return_token(presented)
    if cached is not None:
        return cached
    since = _cache.generation()
    secret_hash = hash_secret(presented)
    row = q.return_token_by_hash(store, secret_hash)
    if row is None:
        raise AuthenticationError("the return token is not valid", scheme=SCHEME)
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"the return token was revoked on {_utc(row.revoked_at)} (the item may have been sold again)",
            scheme=SCHEME,
        )
    clock = int(time.time()) if now is None else now
    if row.expires_at is not None and row.expires_at <= clock:
        raise AuthenticationError(
            f"the return token expired on {_utc(row.expires_at)}; ask the merchant for help with this purchase",
            scheme=SCHEME,
        )
    if row.sale_seq is not None:
        # The index may not have seen this token's sale yet (it was just recorded): only a later sale ends it.
        sale = sales.current_sale(store, row.item_id)
        if sale is not None and sale.sale_seq > row.sale_seq:
            raise AuthenticationError(
                "the return token is for an earlier sale of this item, which was sold again since", scheme=SCHEME
            )
    consumer = Consumer(item_id=row.item_id, address=row.consumer, token_hash=secret_hash, sale_seq=row.sale_seq)
    _cache.remember(secret_hash, consumer, since=since, until=row.expires_at)
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
    """Revokes the item's tokens (only ``consumer``'s if given); every API worker refuses them within its
    revocation poll (``LEDGER_REVOCATION_POLL_S``), this process at once."""
    revoked = q.revoke_return_tokens(
        store, item_id=item_id, consumer=consumer, revoked_at=int(time.time()) if now is None else now
    )
    _cache.forget_consumers(item_id)
    return revoked
