"""Every SQL statement on the API's tables (:mod:`ledger_service.store.api_schema`).

Callers (ledger_service.access, ledger_service.returns, ...) pass a
:class:`~ledger_service.store.Store` and get frozen rows back; nothing outside
ledger_service/store builds SQL. Each function is one transaction. Addresses
and hashes are stored lowercase (callers may pass any case). Database
failures surface as :class:`StoreError` / :class:`StoreUnavailableError`.

Concurrency guarantees that callers rely on:
- :func:`claim_idempotency_key`: of many concurrent claims of one (actor, key),
  exactly one gets ``None`` (it runs the request); the others get the row;
- :func:`insert_return_request` with ``active_item``: at most one request holds
  an item at a time; the loser gets :class:`ItemBusyError` naming the holder;
- :func:`record_decision` with ``expected_outcome``: compare-and-set, so two
  merchants deciding one manual request cannot both succeed;
- every revocation (:func:`revoke_api_key`, :func:`revoke_return_tokens`, a new
  token for an item in :func:`insert_return_token`) adds a ``credential_revocations``
  row in the same transaction: :func:`latest_revocation` changes exactly when a
  credential was revoked somewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ledger_service.errors import ConflictError
from ledger_service.store._db import read_transaction, upsert, write_transaction
from ledger_service.store._errors import StoreError
from ledger_service.store.api_schema import (
    api_keys,
    credential_revocations,
    idempotency_keys,
    item_categories,
    policy_terms,
    return_requests,
    return_tokens,
)
from ledger_service.store.handle import Store

__all__ = [
    "ApiKeyRow",
    "IdempotencyRow",
    "ItemBusyError",
    "ItemCategoryRow",
    "PolicyTermsRow",
    "ReturnRequestRow",
    "ReturnTokenRow",
    "active_request_for_item",
    "api_key_by_hash",
    "api_key_by_id",
    "claim_idempotency_key",
    "complete_idempotency_key",
    "get_idempotency_key",
    "insert_api_key",
    "insert_return_request",
    "insert_return_token",
    "item_categories_of",
    "item_category",
    "latest_revocation",
    "list_api_keys",
    "list_policy_terms",
    "list_return_requests",
    "policy_terms_of",
    "purge_idempotency_keys",
    "put_policy_terms",
    "record_decision",
    "release_idempotency_key",
    "release_item",
    "return_request_by_id",
    "return_token_by_hash",
    "revoke_api_key",
    "revoke_return_tokens",
    "set_item_category",
]


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _decider(decided_by: str) -> str:
    """``auto`` as it is, an address lowercase."""
    return decided_by.lower() if decided_by.startswith("0x") else decided_by


def _insert_ignore(conn: Connection, table: Table, row: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; whether the row was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**row).on_conflict_do_nothing()
    return conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount == 1


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
    values = {
        "name": name,
        "role": role,
        "actor_address": _lower(actor_address),
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
        actor_address=_lower(actor_address),
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


def api_key_by_id(store: Store, key_id: int) -> ApiKeyRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
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


# ---- idempotency_keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    actor: str
    key: str
    method: str
    path: str
    request_hash: str
    status: int | None
    """None: the first request is still running."""
    response_body: str | None
    created_at: int
    completed_at: int | None


def _idempotency(row: Row[Any]) -> IdempotencyRow:
    return IdempotencyRow(
        actor=row.actor,
        key=row.idempotency_key,
        method=row.method,
        path=row.path,
        request_hash=row.request_hash,
        status=row.status,
        response_body=row.response_body,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def _idempotency_where(actor: str, key: str) -> Any:
    return and_(idempotency_keys.c.actor == actor, idempotency_keys.c.idempotency_key == key)


def claim_idempotency_key(
    store: Store,
    *,
    actor: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    now: int,
    lease_s: int,
    ttl_s: int | None = None,
) -> IdempotencyRow | None:
    """Claims (actor, key) for a new request: None if this caller now owns it, else the existing row.

    A claim still in progress after ``lease_s`` seconds (its process died) is taken over by a request
    with the same hash. A record created ``ttl_s`` seconds ago or earlier has expired (whether or not the
    purge deleted it yet): it is replaced by the new claim, whatever its request was.
    """
    claim = {
        "actor": actor,
        "idempotency_key": key,
        "method": method,
        "path": path,
        "request_hash": request_hash,
        "status": None,
        "response_body": None,
        "created_at": now,
        "completed_at": None,
    }
    with write_transaction(store.engine) as conn:
        for _ in range(3):  # a claim released between our insert and our select: insert again
            if _insert_ignore(conn, idempotency_keys, claim):
                return None
            row = conn.execute(select(idempotency_keys).where(_idempotency_where(actor, key))).first()
            if row is not None:
                break
        else:
            raise StoreError(f"idempotency key {key!r} of {actor} keeps changing; try again")
        existing = _idempotency(row)
        if ttl_s is not None and existing.created_at <= now - ttl_s:
            replaced = conn.execute(
                update(idempotency_keys)
                .where(_idempotency_where(actor, key), idempotency_keys.c.created_at == existing.created_at)
                .values(claim)
            ).rowcount
            if replaced == 1:
                return None
            raise StoreError(f"idempotency key {key!r} of {actor} keeps changing; try again")
        stale = existing.status is None and existing.created_at <= now - lease_s
        if stale and existing.request_hash == request_hash:
            taken = conn.execute(
                update(idempotency_keys)
                .where(
                    _idempotency_where(actor, key),
                    idempotency_keys.c.status.is_(None),
                    idempotency_keys.c.created_at == existing.created_at,
                )
                .values(created_at=now)
            ).rowcount
            if taken == 1:
                return None
        return existing


def complete_idempotency_key(store: Store, *, actor: str, key: str, status: int, response_body: str, now: int) -> None:
    """Stores the response of the request that owns (actor, key)."""
    with write_transaction(store.engine) as conn:
        conn.execute(
            update(idempotency_keys)
            .where(_idempotency_where(actor, key))
            .values(status=status, response_body=response_body, completed_at=now)
        )


def release_idempotency_key(store: Store, *, actor: str, key: str) -> None:
    """Drops an in-progress claim (the request failed without a response worth replaying)."""
    with write_transaction(store.engine) as conn:
        conn.execute(
            delete(idempotency_keys).where(_idempotency_where(actor, key), idempotency_keys.c.status.is_(None))
        )


def get_idempotency_key(store: Store, *, actor: str, key: str) -> IdempotencyRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(idempotency_keys).where(_idempotency_where(actor, key))).first()
    return None if row is None else _idempotency(row)


def purge_idempotency_keys(store: Store, *, created_before: int) -> int:
    """Deletes the records created before ``created_before`` (completed ones, and claims whose process died:
    callers pass a time older than the claims' lease); returns how many."""
    with write_transaction(store.engine) as conn:
        result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < created_before))
        return int(result.rowcount)


# ---- return_requests ---------------------------------------------------------------------


class ItemBusyError(ConflictError):
    """Another return request holds the item (it is being decided or waits for manual review)."""

    def __init__(self, item_id: str, holder: str) -> None:
        super().__init__(f"item {item_id} already has a return request in progress ({holder})")
        self.item_id = item_id
        self.holder = holder


@dataclass(frozen=True, slots=True)
class ReturnRequestRow:
    """A consumer's return request and the review's outcome."""

    id: str
    item_id: str
    consumer: str
    merchant: str
    reason_code: str
    comment: str | None
    outcome: str
    """``approve``, ``reject`` or ``manual_review``."""
    reasons: list[Any]
    return_id: str | None
    tx_hash: str | None
    created_at: int
    decided_at: int | None
    decided_by: str | None
    """``auto`` or the deciding merchant's address."""
    active_item: str | None
    """The item id while this request blocks other requests for the item."""


def _request(row: Row[Any]) -> ReturnRequestRow:
    return ReturnRequestRow(
        id=row.id,
        item_id=row.item_id,
        consumer=row.consumer,
        merchant=row.merchant,
        reason_code=row.reason_code,
        comment=row.comment,
        outcome=row.outcome,
        reasons=list(row.reasons),
        return_id=row.return_id,
        tx_hash=row.tx_hash,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        active_item=row.active_item,
    )


def insert_return_request(store: Store, row: ReturnRequestRow) -> None:
    """Stores a new request. With ``row.active_item`` set it takes the item's slot, or raises
    :class:`ItemBusyError` if another request holds it."""
    values = {
        "id": row.id,
        "item_id": row.item_id.lower(),
        "consumer": row.consumer.lower(),
        "merchant": row.merchant.lower(),
        "reason_code": row.reason_code,
        "comment": row.comment,
        "outcome": row.outcome,
        "reasons": row.reasons,
        "return_id": _lower(row.return_id),
        "tx_hash": _lower(row.tx_hash),
        "created_at": row.created_at,
        "decided_at": row.decided_at,
        "decided_by": None if row.decided_by is None else _decider(row.decided_by),
        "active_item": _lower(row.active_item),
    }
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(return_requests.insert().values(**values))
    except StoreError:
        if row.active_item is not None:
            holder = active_request_for_item(store, row.active_item)
            if holder is not None:
                raise ItemBusyError(row.item_id.lower(), holder.id) from None
        raise


def return_request_by_id(store: Store, request_id: str) -> ReturnRequestRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_requests).where(return_requests.c.id == request_id)).first()
    return None if row is None else _request(row)


def active_request_for_item(store: Store, item_id: str) -> ReturnRequestRow | None:
    """The request holding the item's slot, if any."""
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(return_requests).where(return_requests.c.active_item == item_id.lower())).first()
    return None if row is None else _request(row)


def list_return_requests(
    store: Store,
    *,
    merchant: str | None = None,
    consumer: str | None = None,
    item_id: str | None = None,
    outcomes: Sequence[str] | None = None,
    reason_code: str | None = None,
    created_from: int | None = None,
    created_to: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ReturnRequestRow], int]:
    """Requests matching every given filter, newest first, and the total count of matches.

    ``created_from`` is inclusive and ``created_to`` exclusive (wall-clock unix seconds).
    """
    conditions: list[Any] = []
    if merchant is not None:
        conditions.append(return_requests.c.merchant == merchant.lower())
    if consumer is not None:
        conditions.append(return_requests.c.consumer == consumer.lower())
    if item_id is not None:
        conditions.append(return_requests.c.item_id == item_id.lower())
    if outcomes is not None:
        conditions.append(return_requests.c.outcome.in_(list(outcomes)))
    if reason_code is not None:
        conditions.append(return_requests.c.reason_code == reason_code)
    if created_from is not None:
        conditions.append(return_requests.c.created_at >= created_from)
    if created_to is not None:
        conditions.append(return_requests.c.created_at < created_to)
    page = (
        select(return_requests)
        .where(*conditions)
        .order_by(return_requests.c.created_at.desc(), return_requests.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(return_requests).where(*conditions)
    with read_transaction(store.engine) as conn:
        rows = [_request(row) for row in conn.execute(page)]
        count = int(conn.execute(total).scalar_one())
    return rows, count


def record_decision(
    store: Store,
    *,
    request_id: str,
    outcome: str,
    decided_at: int,
    decided_by: str,
    reasons: list[Any] | None = None,
    return_id: str | None = None,
    tx_hash: str | None = None,
    keep_item: bool = False,
    expected_outcome: str | None = None,
) -> bool:
    """Sets the request's outcome (and the reasons, return and transaction when given; None: unchanged).

    The item's slot is released unless ``keep_item``. With ``expected_outcome`` the update happens only
    if the stored outcome still is that one; returns whether the request was updated.
    """
    values: dict[str, Any] = {"outcome": outcome, "decided_at": decided_at, "decided_by": _decider(decided_by)}
    if reasons is not None:
        values["reasons"] = reasons
    if return_id is not None:
        values["return_id"] = return_id.lower()
    if tx_hash is not None:
        values["tx_hash"] = tx_hash.lower()
    if not keep_item:
        values["active_item"] = None
    conditions: list[Any] = [return_requests.c.id == request_id]
    if expected_outcome is not None:
        conditions.append(return_requests.c.outcome == expected_outcome)
    with write_transaction(store.engine) as conn:
        return conn.execute(update(return_requests).where(*conditions).values(**values)).rowcount == 1


def release_item(store: Store, *, request_id: str) -> None:
    """The request stops blocking other requests for its item."""
    with write_transaction(store.engine) as conn:
        conn.execute(update(return_requests).where(return_requests.c.id == request_id).values(active_item=None))


# ---- policy_terms ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyTermsRow:
    merchant: str
    digest: str
    document: dict[str, Any]
    created_at: int


def put_policy_terms(store: Store, *, merchant: str, digest: str, document: dict[str, Any], created_at: int) -> bool:
    """Stores a policy document under its digest; False if that digest was already stored (kept as it was)."""
    row = {"merchant": merchant.lower(), "digest": digest.lower(), "document": document, "created_at": created_at}
    with write_transaction(store.engine) as conn:
        return _insert_ignore(conn, policy_terms, row)


def delete_policy_terms(store: Store, *, merchant: str, digest: str) -> None:
    """Removes a policy document stored for a publication that then failed."""
    stmt = delete(policy_terms).where(
        policy_terms.c.merchant == merchant.lower(), policy_terms.c.digest == digest.lower()
    )
    with write_transaction(store.engine) as conn:
        conn.execute(stmt)


def policy_terms_of(store: Store, *, merchant: str, digest: str) -> PolicyTermsRow | None:
    stmt = select(policy_terms).where(
        policy_terms.c.merchant == merchant.lower(), policy_terms.c.digest == digest.lower()
    )
    with read_transaction(store.engine) as conn:
        row = conn.execute(stmt).first()
    return None if row is None else PolicyTermsRow(row.merchant, row.digest, dict(row.document), row.created_at)


def list_policy_terms(store: Store, *, merchant: str) -> list[PolicyTermsRow]:
    """The merchant's stored documents, oldest first."""
    stmt = (
        select(policy_terms)
        .where(policy_terms.c.merchant == merchant.lower())
        .order_by(policy_terms.c.created_at, policy_terms.c.digest)
    )
    with read_transaction(store.engine) as conn:
        return [PolicyTermsRow(r.merchant, r.digest, dict(r.document), r.created_at) for r in conn.execute(stmt)]


# ---- item_categories ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemCategoryRow:
    item_id: str
    category: str
    set_by: str
    set_at: int


def set_item_category(store: Store, *, item_id: str, category: str, set_by: str, set_at: int) -> None:
    """Sets (or replaces) the item's category."""
    row = {"item_id": item_id.lower(), "category": category, "set_by": set_by.lower(), "set_at": set_at}
    with write_transaction(store.engine) as conn:
        upsert(conn, item_categories, [row])


def item_category(store: Store, item_id: str) -> ItemCategoryRow | None:
    with read_transaction(store.engine) as conn:
        row = conn.execute(select(item_categories).where(item_categories.c.item_id == item_id.lower())).first()
    return None if row is None else ItemCategoryRow(row.item_id, row.category, row.set_by, row.set_at)


def item_categories_of(store: Store, item_ids: Iterable[str]) -> dict[str, str]:
    """Category by item id, for the items that have one."""
    keys = sorted({item_id.lower() for item_id in item_ids})
    if not keys:
        return {}
    with read_transaction(store.engine) as conn:
        stmt = select(item_categories.c.item_id, item_categories.c.category).where(item_categories.c.item_id.in_(keys))
        return {row.item_id: row.category for row in conn.execute(stmt)}
