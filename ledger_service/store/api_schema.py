"""Tables the API owns (SQLAlchemy Core), on the same MetaData as the index (schema.py).

The indexer never reads or writes these tables and the API never writes the
index's: data still flows one way (chain -> indexer -> index), and these rows
are the API's own facts (credentials, requests, documents). Their migrations are
revisions 0002 (store/migrations/versions/0002_api_tables.py) and 0006 (tokens
bound to their sale and expiring, revocations, sealed idempotent answers).

Conventions as in schema.py: ids and digests ``0x`` + 64 lowercase hex,
addresses ``0x`` + 40 lowercase hex. Times here are *wall-clock* unix seconds
(when the service saw something), not chain time. Secrets are never stored:
API keys and return tokens only as the sha256 hex of the plaintext; an
idempotent answer (which may carry a new return token) only sealed with a key
derived from the caller's credential, which is not stored either
(:func:`ledger_service.access.seal`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger_service.store.schema import ADDRESS, HASH, metadata

SHA256_HEX = String(64)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, comment="who holds the key, for people"),
    Column("role", String(16), nullable=False, comment="merchant|carrier|inspector|arbiter|auditor|admin"),
    Column("actor_address", ADDRESS, nullable=True, comment="on-chain account of a writing role; else NULL"),
    Column("key_hash", SHA256_HEX, nullable=False, comment="sha256 hex of the plaintext key"),
    Column("key_prefix", String(16), nullable=False, comment="first characters of the key, to recognise it"),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    UniqueConstraint("key_hash"),
)

return_tokens = Table(
    "return_tokens",
    metadata,
    Column("token_hash", SHA256_HEX, primary_key=True, comment="sha256 hex of the plaintext token"),
    Column("item_id", HASH, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("sale_seq", BigInteger, nullable=True, comment="the item's sale the token is for; NULL: issued before 0006"),
    Column("expires_at", BigInteger, nullable=True, comment="when the token stops working (wall clock)"),
    Index("ix_return_tokens_item_id", "item_id"),
    comment="a consumer's credential for one sold item, returned once by POST /v1/sales",
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("actor", String(80), nullable=False, comment="key:<api key id> or token:<sha256 of the return token>"),
    Column("idempotency_key", String(255), nullable=False, comment="the client's Idempotency-Key header"),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", SHA256_HEX, nullable=False, comment="sha256 of method, path, query and body"),
    Column("status", Integer, nullable=True, comment="HTTP status of the stored response; NULL: in progress"),
    Column(
        "response_body",
        Text,
        nullable=True,
        comment="the response body, sealed with a key from the caller's credential",
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("actor", "idempotency_key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

credential_revocations = Table(
    "credential_revocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="api_key|return_token"),
    Column("subject", String(80), nullable=False, comment="the key's id, or the item id whose tokens were revoked"),
    Column("revoked_at", BigInteger, nullable=False),
    comment="one row per revocation: API workers watch max(id) to drop cached credentials at once",
)

return_requests = Table(
    "return_requests",
    metadata,
    Column("id", String(40), primary_key=True, comment="rr_ + 32 hex"),
    Column("item_id", HASH, nullable=False),
    Column("consumer", ADDRESS, nullable=False),
    Column("merchant", ADDRESS, nullable=False, comment="the item's merchant when the request came in"),
    Column("reason_code", String(64), nullable=False),
    Column("comment", Text, nullable=True),
    Column("outcome", String(16), nullable=False, comment="approve|reject|manual_review"),
    Column("reasons", JSON, nullable=False, comment="the review's reasons (list of objects)"),
    Column("return_id", HASH, nullable=True, comment="the on-chain return once authorized"),
    Column("tx_hash", HASH, nullable=True, comment="the authorizing transaction"),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(64), nullable=True, comment="auto, or the deciding merchant's address"),
    Column(
        "active_item",
        HASH,
        nullable=True,
        comment="item_id while this request blocks another request for the item; NULL once it does not",
    ),
    UniqueConstraint("active_item"),
    Index("ix_return_requests_merchant_created", "merchant", "created_at"),
    Index("ix_return_requests_consumer_created", "consumer", "created_at"),
    Index("ix_return_requests_item_id", "item_id"),
    Index("ix_return_requests_return_id", "return_id"),
)

policy_terms = Table(
    "policy_terms",
    metadata,
    Column("merchant", ADDRESS, nullable=False),
    Column("digest", HASH, nullable=False, comment="the documentDigest published on-chain"),
    Column(
        "document",
        JSON,
        nullable=False,
        comment="categories, accepted reasons, manual review settings, fast-refund conditions, wording",
    ),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant", "digest"),
)

item_categories = Table(
    "item_categories",
    metadata,
    Column("item_id", HASH, primary_key=True),
    Column("category", String(100), nullable=False),
    Column("set_by", ADDRESS, nullable=False, comment="the merchant that set it"),
    Column("set_at", BigInteger, nullable=False),
)

document_quota = Table(
    "document_quota",
    metadata,
    Column("principal", String(80), nullable=False, comment="key:<api key id> or token:<sha256 of the return token>"),
    Column("day", Integer, nullable=False, comment="UTC day number (unix seconds // 86400)"),
    Column("bytes", BigInteger, nullable=False, comment="bytes of documents uploaded that day"),
    PrimaryKeyConstraint("principal", "day"),
    comment="each caller's uploads per day, against LEDGER_DOCUMENT_QUOTA_BYTES (revision 0007)",
)

API_TABLES: tuple[Table, ...] = (
    api_keys,
    return_tokens,
    idempotency_keys,
    credential_revocations,
    return_requests,
    policy_terms,
    item_categories,
    document_quota,
)
"""Every table of this module (written by the API only)."""
