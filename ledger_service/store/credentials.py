"""Credentials: API keys (``api_keys``), consumers' return tokens (``return_tokens``) and the revocation
log (``credential_revocations``); all written by the API and ``ledger-admin``, never by the indexer.

Keys and tokens are stored as the sha256 hex of the plaintext only. Each function is one transaction and
returns frozen rows; addresses and item ids are stored lowercase (callers may pass any case).

Invariant callers rely on: every revocation (:func:`revoke_api_key`, :func:`revoke_return_tokens`, a new
token for an item in :func:`insert_return_token`) adds a ``credential_revocations`` row in the same
transaction, so :func:`latest_revocation` changes exactly when a credential was revoked somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, func, or_, select, update

from ledger_service.store._db import read_transaction, write_transaction
from ledger_service.store._errors import StoreError
from ledger_service.store.handle import Store
from ledger_service.store.tables import api_keys, credential_revocations, return_tokens

__all__ = [
    "ApiKeyRow",
    "ReturnTokenRow",
    "api_key_by_hash",
    "insert_api_key",
    "insert_return_token",
    "latest_revocation",
    "list_api_keys",
    "return_token_by_hash",
    "revoke_api_key",
    "revoke_return_tokens",
]


# ---- api_keys --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """An API key as stored (never the plaintext)."""

    id: int
    name: str
    role: str
    actor_address: str | None
    key_hash: str
    key_prefix: str
    created_at: int
    revoked_at: int | None


def _api_key(row: Row[Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=row.id,
        name=row.name,
        role=row.role,
        actor_address=row.actor_address,
        key_hash=row.key_hash,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def insert_api_key(
    store: Store,
    *,
    name: str,
    role: str,
    actor_address: str | None,
    key_hash: str,
    key_prefix: str,
    created_at: int,
) -> ApiKeyRow:
    """Stores a new key; returns it with its id."""
    actor = None if actor_address is None else actor_address.lower()
    values = {
        "name": name,
        "role": role,
        "actor_address": actor,
        "key_hash": key_hash,
        "key_prefix": key_prefix,
        "created_at": created_at,
        "revoked_at": None,
    }
    with write_transaction(store.engine) as conn:
        result = conn.execute(api_keys.insert().values(**values))
        inserted = result.inserted_primary_key
        if inserted is None:  # pragma: no cover - every supported database reports it
            raise StoreError("the database did not report the new API key's id")
        key_id = int(inserted[0])
    return ApiKeyRow(
        id=key_id,
        name=name,
        role=role,
        actor_address=actor,
        key_hash=key_hash,
        key_prefix=key_prefix,
        created_at=created_at,
        revoked_at=None,
    )


def api_key_by_hash(store: Store, key_hash: str) -> ApiKeyRow | None:
    """The key with this sha256 hex (revoked or not)."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
    return None if row is None else _api_key(row)


def list_api_keys(store: Store) -> list[ApiKeyRow]:
    """Every key, oldest first."""
    with read_transaction(store.engine) as conn:
        return [_api_key(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def revoke_api_key(store: Store, *, key_id: int, revoked_at: int) -> ApiKeyRow | None:
    """Revokes the key (an already revoked key keeps its first revocation time); None if there is no such key."""
    with write_transaction(store.engine) as conn:
        revoked = conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=revoked_at)
        ).rowcount
        if revoked:
            _note_revocation(conn, kind="api_key", subject=str(key_id), revoked_at=revoked_at)
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return None if row is None else _api_key(row)


# ---- credential_revocations ---------------------------------------------------------------


def _note_revocation(conn: Connection, *, kind: str, subject: str, revoked_at: int) -> None:
    conn.execute(credential_revocations.insert().values(kind=kind, subject=subject, revoked_at=revoked_at))


def latest_revocation(store: Store) -> int:
    """The id of the latest revocation (0 if none): it changes exactly when a credential was revoked."""
    with read_transaction(store.engine) as conn:
        latest = conn.execute(select(func.max(credential_revocations.c.id))).scalar_one()
    return 0 if latest is None else int(latest)


# ---- return_tokens -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnTokenRow:
    token_hash: str
    item_id: str
    consumer: str
    created_at: int
    revoked_at: int | None
    sale_seq: int | None
    """The item's sale the token is for (None: issued before sales were recorded with tokens)."""
    expires_at: int | None


def insert_return_token(
    store: Store, *, token_hash: str, item_id: str, consumer: str, sale_seq: int, created_at: int, expires_at: int
) -> int:
    """Stores the token of sale ``sale_seq`` and, in the same transaction, revokes the item's tokens of earlier
    sales (the item was sold again: they name a consumer it no longer belongs to); returns how many."""
    item = item_id.lower()
    with write_transaction(store.engine) as conn:
        earlier = conn.execute(
            update(return_tokens)
            .where(
                return_tokens.c.item_id == item,
                return_tokens.c.revoked_at.is_(None),
                or_(return_tokens.c.sale_seq.is_(None), return_tokens.c.sale_seq < sale_seq),
            )
            .values(revoked_at=created_at)
        ).rowcount
        if earlier:
            _note_revocation(conn, kind="return_token", subject=item, revoked_at=created_at)
        conn.execute(
            return_tokens.insert().values(
                token_hash=token_hash,
                item_id=item,
                consumer=consumer.lower(),
                created_at=created_at,
                revoked_at=None,
                sale_seq=sale_seq,
                expires_at=expires_at,
            )
        )
    return int(earlier)


def return_token_by_hash(store: Store, token_hash: str) -> ReturnTokenRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_tokens).where(return_tokens.c.token_hash == token_hash)).first()
    if row is None:
        return None
    return ReturnTokenRow(
        row.token_hash, row.item_id, row.consumer, row.created_at, row.revoked_at, row.sale_seq, row.expires_at
    )


def revoke_return_tokens(store: Store, *, item_id: str, revoked_at: int, consumer: str | None = None) -> int:
    """Revokes the item's tokens (only ``consumer``'s if given); returns how many were live."""
    conditions = [return_tokens.c.item_id == item_id.lower(), return_tokens.c.revoked_at.is_(None)]
    if consumer is not None:
        conditions.append(return_tokens.c.consumer == consumer.lower())
    with write_transaction(store.engine) as conn:
        revoked = int(conn.execute(update(return_tokens).where(*conditions).values(revoked_at=revoked_at)).rowcount)
        if revoked:
            _note_revocation(conn, kind="return_token", subject=item_id.lower(), revoked_at=revoked_at)
        return revoked
