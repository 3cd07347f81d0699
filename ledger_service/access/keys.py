"""API keys: created by an admin (plaintext shown once), verified by sha256, revoked, listed.

A key of a writing role (merchant, carrier, inspector, arbiter) maps to the
actor's on-chain account, which the service signs for with the key
configured in LEDGER_SIGNER_KEYS; an auditor or admin key maps to none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils.address import is_address

from ledger_service.access import _cache
from ledger_service.access._model import Actor, Role
from ledger_service.access._secrets import API_KEY_PREFIX, hash_secret, new_secret, well_formed
from ledger_service.errors import AuthenticationError, InvalidRequestError, NotFoundError
from ledger_service.store import credentials as q
from ledger_service.store.handle import Store

MAX_NAME_LENGTH = 200
_PREFIX_SHOWN = len(API_KEY_PREFIX) + 6


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record (never its plaintext)."""

    id: int
    name: str
    role: Role
    actor_address: str | None
    key_prefix: str
    """The first characters of the key (``rlk_`` + 6), to recognise it in a list."""
    created_at: int
    revoked_at: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: its record and the plaintext, which exists only here (it is stored hashed)."""

    key: ApiKey
    plaintext: str


def _record(row: q.ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        actor_address=row.actor_address,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def create_api_key(
    *, store: Store, role: Role | str, name: str, actor_address: str | None = None, now: int | None = None
) -> CreatedKey:
    """Creates a key. Raises :class:`InvalidRequestError` for an unknown role, an empty or overlong name,
    a writing role without a valid account, or an auditor/admin key with one."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidRequestError(f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequestError(f"a key needs a name of 1 to {MAX_NAME_LENGTH} characters")
    if role.writes:
        if actor_address is None:
            raise InvalidRequestError(f"{role} keys act on-chain: give the account the key acts for (0x...)")
        if not is_address(actor_address):
            raise InvalidRequestError(f"{actor_address!r} is not an account address (0x + 40 hex digits)")
    elif actor_address is not None:
        raise InvalidRequestError(f"{role} keys act for no on-chain account: leave the account out")
    plaintext = new_secret(API_KEY_PREFIX)
    row = q.insert_api_key(
        store,
        name=name,
        role=role.value,
        actor_address=actor_address,
        key_hash=hash_secret(plaintext),
        key_prefix=plaintext[:_PREFIX_SHOWN],
        created_at=int(time.time()) if now is None else now,
    )
    return CreatedKey(key=_record(row), plaintext=plaintext)


def list_api_keys(*, store: Store) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return [_record(row) for row in q.list_api_keys(store)]


def revoke_api_key(*, store: Store, key_id: int, now: int | None = None) -> ApiKey:
    """Revokes the key (a revoked key stays revoked; its first revocation time is kept): this process refuses
    it at once, every API worker within its revocation poll (``LEDGER_REVOCATION_POLL_S``).
    Raises :class:`NotFoundError` if there is no such key."""
    row = q.revoke_api_key(store, key_id=key_id, revoked_at=int(time.time()) if now is None else now)
    _cache.forget_actors(key_id)
    if row is None:
        raise NotFoundError(f"there is no API key {key_id}")
    return _record(row)


def verify_api_key(*, store: Store, presented: str) -> Actor:
    """The actor holding ``presented``; :class:`AuthenticationError` if it is malformed, unknown or revoked.

    A valid key is remembered for :data:`~ledger_service.access._cache.VERIFIED_TTL_S` seconds at most (a
    revocation in this process takes effect at once; in another, at this process's next
    :class:`~ledger_service.access.RevocationWatch` check)."""
    cached = cached_api_key(presented)
    if cached is not None:
        return cached
    since = _cache.generation()
    secret_hash = hash_secret(presented)
    row = q.api_key_by_hash(store, secret_hash)
    if row is None:
        raise AuthenticationError("the API key is not valid")
    if row.revoked_at is not None:
        raise AuthenticationError(f"the API key was revoked on {_utc(row.revoked_at)}")
    actor = Actor(key_id=row.id, name=row.name, role=Role(row.role), address=row.actor_address)
    _cache.remember(secret_hash, actor, since=since)
    return actor


def cached_api_key(presented: str) -> Actor | None:
    """The actor of ``presented`` if it was verified less than the cache's TTL ago (no database read), else
    None; :class:`AuthenticationError` if ``presented`` is malformed."""
    if not well_formed(presented, API_KEY_PREFIX):
        raise AuthenticationError(f"the API key is malformed: keys look like {API_KEY_PREFIX}<43 characters>")
    found = _cache.lookup(hash_secret(presented))
    return found if isinstance(found, Actor) else None
