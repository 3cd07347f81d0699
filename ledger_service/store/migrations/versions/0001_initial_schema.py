"""Initial schema: exactly the tables of ledger_service/store/schema.py at this revision.

Self-contained on purpose (no import of schema.py): a later change to
schema.py comes with a new revision, and this one keeps creating what it
created. ``Amount`` (schema.Amount) is NUMERIC(78, 0) on PostgreSQL and
VARCHAR(78) of decimal text on SQLite.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")


def _position() -> list[sa.Column[Any]]:
    return [
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
    ]


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def upgrade() -> None:
    # ---- indexer bookkeeping
    op.create_table(
        "chain_pin",
        sa.Column("id", sa.SmallInteger(), nullable=False, comment="always 1: one chain per index"),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("genesis_hash", HASH, nullable=False),
        sa.Column("ledger_address", ADDRESS, nullable=False),
        sa.Column("escrow_address", ADDRESS, nullable=False),
        sa.Column("deploy_block", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False, comment="wall-clock unix seconds"),
        _pk("chain_pin", "id"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.SmallInteger(), nullable=False, comment="always 1"),
        sa.Column("block_number", sa.BigInteger(), nullable=False, comment="every event up to this block is indexed"),
        sa.Column("block_hash", HASH, nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False, comment="wall-clock unix seconds"),
        _pk("checkpoint", "id"),
    )
    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("parent_hash", HASH, nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        _pk("blocks", "number"),
        comment="indexed blocks above finality (pruned below head - finality_depth)",
    )

    # ---- log tables
    op.create_table(
        "item_registrations",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("manufacturer", ADDRESS, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("metadata_digest", HASH, nullable=False),
        *_position(),
        _pk("item_registrations", "item_id"),
    )
    op.create_index("ix_item_registrations_block", "item_registrations", ["block_number"])
    op.create_table(
        "item_events",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("biz_step", sa.SmallInteger(), nullable=False),
        sa.Column("disposition", sa.SmallInteger(), nullable=False),
        sa.Column("actor", ADDRESS, nullable=False),
        sa.Column("location", HASH, nullable=False, comment="bytes32 as hex: SGLN ASCII right-padded"),
        sa.Column("document", HASH, nullable=False),
        sa.Column("biz_transaction", HASH, nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("event_hash", HASH, nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False, comment="prevHash links and eventHash recomputes"),
        *_position(),
        _pk("item_events", "item_id", "seq"),
    )
    op.create_index("ix_item_events_block", "item_events", ["block_number", "log_index"])
    op.create_index("ix_item_events_actor_time", "item_events", ["actor", "timestamp"])
    op.create_index("ix_item_events_biz_transaction", "item_events", ["biz_transaction"])
    op.create_table(
        "merchant_changes",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("previous_merchant", ADDRESS, nullable=False),
        sa.Column("new_merchant", ADDRESS, nullable=False),
        *_position(),
        _pk("merchant_changes", "block_number", "log_index"),
    )
    op.create_index("ix_merchant_changes_item", "merchant_changes", ["item_id"])
    op.create_table(
        "seller_changes",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("seller", ADDRESS, nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        *_position(),
        _pk("seller_changes", "block_number", "log_index"),
    )
    op.create_table(
        "role_changes",
        sa.Column("role", HASH, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("sender", ADDRESS, nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        *_position(),
        _pk("role_changes", "block_number", "log_index"),
    )
    op.create_table(
        "policies",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("restocking_fee_bps", sa.Integer(), nullable=False),
        sa.Column("fast_refund", sa.Boolean(), nullable=False),
        sa.Column("fast_refund_max_value", AMOUNT, nullable=False),
        sa.Column("fast_refund_max_returns_90d", sa.Integer(), nullable=False),
        sa.Column("ship_by_days", sa.Integer(), nullable=False),
        sa.Column("inspect_by_days", sa.Integer(), nullable=False),
        sa.Column("dispute_window_days", sa.Integer(), nullable=False),
        sa.Column("document_digest", HASH, nullable=False),
        sa.Column("published_at", sa.BigInteger(), nullable=False),
        *_position(),
        _pk("policies", "merchant", "version"),
    )
    op.create_index("ix_policies_block", "policies", ["block_number"])
    op.create_table(
        "sales",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("sale_seq", sa.Integer(), nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("consumer", ADDRESS, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("price", AMOUNT, nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("order_ref", HASH, nullable=False),
        sa.Column("sold_at", sa.BigInteger(), nullable=False),
        *_position(),
        _pk("sales", "item_id", "sale_seq"),
    )
    op.create_index("ix_sales_consumer_time", "sales", ["consumer", "sold_at"])
    op.create_index("ix_sales_merchant_time", "sales", ["merchant", "sold_at"])
    op.create_index("ix_sales_block", "sales", ["block_number"])
    op.create_table(
        "return_transitions",
        sa.Column("return_id", HASH, nullable=False),
        sa.Column("previous", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("actor", ADDRESS, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("evidence", HASH, nullable=False),
        *_position(),
        _pk("return_transitions", "block_number", "log_index"),
    )
    op.create_index("ix_return_transitions_return", "return_transitions", ["return_id", "block_number", "log_index"])
    op.create_table(
        "escrow_payouts",
        sa.Column("return_id", HASH, nullable=False, comment="a deposit is paid out once"),
        sa.Column("consumer", ADDRESS, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("consumer_amount", AMOUNT, nullable=False),
        sa.Column("merchant_amount", AMOUNT, nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=False, comment="block timestamp"),
        *_position(),
        _pk("escrow_payouts", "return_id"),
    )
    op.create_index("ix_escrow_payouts_block", "escrow_payouts", ["block_number"])

    # ---- state tables
    op.create_table(
        "items",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("manufacturer", ADDRESS, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False, comment="current merchant of record"),
        sa.Column("metadata_digest", HASH, nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", HASH, nullable=False),
        sa.Column("last_biz_step", sa.SmallInteger(), nullable=False),
        sa.Column("last_disposition", sa.SmallInteger(), nullable=False),
        sa.Column("last_event_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True, comment="last arriving+retail_sold by a carrier"),
        sa.Column("destroyed", sa.Boolean(), nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False, comment="every event of the item verified"),
        _pk("items", "item_id"),
    )
    op.create_index("ix_items_merchant", "items", ["merchant"])
    op.create_index("ix_items_uri", "items", ["uri"])
    op.create_table(
        "returns",
        sa.Column("return_id", HASH, nullable=False),
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("sale_seq", sa.Integer(), nullable=False),
        sa.Column("consumer", ADDRESS, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("fast_refund", sa.Boolean(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("ship_by", sa.BigInteger(), nullable=False),
        sa.Column("inspect_by", sa.BigInteger(), nullable=True),
        sa.Column("dispute_by", sa.BigInteger(), nullable=True),
        sa.Column("authorized_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False, comment="block of the authorization"),
        sa.Column("tx_hash", HASH, nullable=False),
        _pk("returns", "return_id"),
    )
    op.create_index("ix_returns_item", "returns", ["item_id"])
    op.create_index("ix_returns_consumer_time", "returns", ["consumer", "authorized_at"])
    op.create_index("ix_returns_merchant_state_time", "returns", ["merchant", "state", "updated_at"])
    op.create_index("ix_returns_block", "returns", ["block_number"])
    op.create_table(
        "roles",
        sa.Column("role", HASH, nullable=False),
        sa.Column("account", ADDRESS, nullable=False),
        sa.Column("granted_block", sa.BigInteger(), nullable=False),
        _pk("roles", "role", "account"),
    )
    op.create_index("ix_roles_account", "roles", ["account"])
    op.create_table(
        "sellers",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("seller", ADDRESS, nullable=False),
        _pk("sellers", "merchant", "seller"),
    )
    op.create_table(
        "chain_problems",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.BigInteger(), nullable=False, comment="wall-clock unix seconds"),
        _pk("chain_problems", "id"),
        comment="hash-chain inconsistencies found while indexing; never silently accepted",
    )
    op.create_index("ix_chain_problems_item", "chain_problems", ["item_id"])
    op.create_index("ix_chain_problems_block", "chain_problems", ["block_number"])


def downgrade() -> None:
    for table in (
        "chain_problems",
        "sellers",
        "roles",
        "returns",
        "items",
        "escrow_payouts",
        "return_transitions",
        "sales",
        "policies",
        "role_changes",
        "seller_changes",
        "merchant_changes",
        "item_events",
        "item_registrations",
        "blocks",
        "checkpoint",
        "chain_pin",
    ):
        op.drop_table(table)
