"""API tables: exactly the tables of ledger_service/store/api_schema.py at this revision.

Self-contained on purpose (no import of api_schema.py), like 0001. Times are
wall-clock unix seconds; key and token columns hold sha256 hex, never secrets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
SHA256_HEX = sa.String(64)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, comment="who holds the key, for people"),
        sa.Column("role", sa.String(16), nullable=False, comment="merchant|carrier|inspector|arbiter|auditor|admin"),
        sa.Column("actor_address", ADDRESS, nullable=True, comment="on-chain account of a writing role; else NULL"),
        sa.Column("key_hash", SHA256_HEX, nullable=False, comment="sha256 hex of the plaintext key"),
        sa.Column("key_prefix", sa.String(16), nullable=False, comment="first characters of the key, to recognise it"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        _pk("api_keys", "id"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "return_tokens",
        sa.Column("token_hash", SHA256_HEX, nullable=False, comment="sha256 hex of the plaintext token"),
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("consumer", ADDRESS, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        _pk("return_tokens", "token_hash"),
        comment="a consumer's credential for one sold item, returned once by POST /v1/sales",
    )
    op.create_index("ix_return_tokens_item_id", "return_tokens", ["item_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", sa.String(80), nullable=False, comment="key:<api key id> or consumer:<address>"),
        sa.Column("idempotency_key", sa.String(255), nullable=False, comment="the client's Idempotency-Key header"),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("request_hash", SHA256_HEX, nullable=False, comment="sha256 of method, path, query and body"),
        sa.Column(
            "status", sa.Integer(), nullable=True, comment="HTTP status of the stored response; NULL: in progress"
        ),
        sa.Column("response_body", sa.Text(), nullable=True, comment="the response body as sent"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        _pk("idempotency_keys", "actor", "idempotency_key"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "return_requests",
        sa.Column("id", sa.String(40), nullable=False, comment="rr_ + 32 hex"),
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("consumer", ADDRESS, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False, comment="the item's merchant when the request came in"),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False, comment="approve|reject|manual_review"),
        sa.Column("reasons", sa.JSON(), nullable=False, comment="the review's reasons (list of objects)"),
        sa.Column("return_id", HASH, nullable=True, comment="the on-chain return once authorized"),
        sa.Column("tx_hash", HASH, nullable=True, comment="the authorizing transaction"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True, comment="auto, or the deciding merchant's address"),
        sa.Column(
            "active_item",
            HASH,
            nullable=True,
            comment="item_id while this request blocks another request for the item; NULL once it does not",
        ),
        _pk("return_requests", "id"),
        sa.UniqueConstraint("active_item", name="uq_return_requests_active_item"),
    )
    op.create_index("ix_return_requests_merchant_created", "return_requests", ["merchant", "created_at"])
    op.create_index("ix_return_requests_consumer_created", "return_requests", ["consumer", "created_at"])
    op.create_index("ix_return_requests_item_id", "return_requests", ["item_id"])
    op.create_index("ix_return_requests_return_id", "return_requests", ["return_id"])
    op.create_table(
        "policy_terms",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("digest", HASH, nullable=False, comment="the documentDigest published on-chain"),
        sa.Column(
            "document",
            sa.JSON(),
            nullable=False,
            comment="categories, accepted reasons, manual review settings, fast-refund conditions, wording",
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _pk("policy_terms", "merchant", "digest"),
    )
    op.create_table(
        "item_categories",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("set_by", ADDRESS, nullable=False, comment="the merchant that set it"),
        sa.Column("set_at", sa.BigInteger(), nullable=False),
        _pk("item_categories", "item_id"),
    )


def downgrade() -> None:
    for table in (
        "item_categories",
        "policy_terms",
        "return_requests",
        "idempotency_keys",
        "return_tokens",
        "api_keys",
    ):
        op.drop_table(table)
