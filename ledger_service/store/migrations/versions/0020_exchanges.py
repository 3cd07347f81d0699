"""Exchanges and the unit check: ExchangeEscrow's address in the pin, its events and ReturnUnitMismatch.

Log tables written by the indexer (a reorg deletes their rows above the common ancestor): ``exchange_terms``
(one per merchant and policy version), ``list_prices`` (every ListPriceSet; an item's price is its latest),
``exchanges`` (ExchangeAuthorized, keyed by the id of its return), ``exchange_payments``,
``exchange_releases`` and ``exchange_collateral_payouts`` (each once per exchange) and
``return_unit_mismatches``. ``chain_pin.exchange_address`` is NULL for an index pinned before ExchangeEscrow.
Self-contained on purpose (no import of tables.py), like 0001; amounts as there (a price difference is
signed, stored the same way).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")

_INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ix_exchange_terms_block", "exchange_terms", ("block_number",)),
    ("ix_list_prices_item", "list_prices", ("item_id", "block_number", "log_index")),
    ("ix_exchanges_original", "exchanges", ("original_item_id",)),
    ("ix_exchanges_replacement", "exchanges", ("replacement_item_id",)),
    ("ix_exchanges_merchant", "exchanges", ("merchant",)),
    ("ix_exchanges_block", "exchanges", ("block_number",)),
    ("ix_exchange_payments_block", "exchange_payments", ("block_number",)),
    ("ix_exchange_releases_block", "exchange_releases", ("block_number",)),
    ("ix_exchange_collateral_payouts_block", "exchange_collateral_payouts", ("block_number",)),
    ("ix_return_unit_mismatches_return", "return_unit_mismatches", ("return_id",)),
    ("ix_return_unit_mismatches_scanned", "return_unit_mismatches", ("scanned_item_id",)),
)


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
    with op.batch_alter_table("chain_pin") as batch:
        comment = "ExchangeEscrow (revision 0020); NULL before it"
        batch.add_column(sa.Column("exchange_address", ADDRESS, nullable=True, comment=comment))
    op.create_table(
        "exchange_terms",
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("instant", sa.Boolean(), nullable=False),
        sa.Column("instant_max_value", AMOUNT, nullable=False, comment="0: no limit"),
        sa.Column("document_digest", HASH, nullable=False),
        *_position(),
        _pk("exchange_terms", "merchant", "policy_version"),
    )
    op.create_table(
        "list_prices",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("price", AMOUNT, nullable=False, comment="0: not offered as a replacement"),
        *_position(),
        _pk("list_prices", "block_number", "log_index"),
        comment="every ListPriceSet; an item's price is its latest row",
    )
    op.create_table(
        "exchanges",
        sa.Column("exchange_id", HASH, nullable=False, comment="the id of its return"),
        sa.Column("original_item_id", HASH, nullable=False),
        sa.Column("replacement_item_id", HASH, nullable=False),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("replacement_price", AMOUNT, nullable=False),
        sa.Column("price_difference", AMOUNT, nullable=False, comment="< 0: refunded to the consumer"),
        sa.Column("collateral", AMOUNT, nullable=False),
        sa.Column("instant", sa.Boolean(), nullable=False),
        *_position(),
        _pk("exchanges", "exchange_id"),
    )
    op.create_table(
        "exchange_payments",
        sa.Column("exchange_id", HASH, nullable=False, comment="recorded once"),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("payment_ref", HASH, nullable=False),
        *_position(),
        _pk("exchange_payments", "exchange_id"),
    )
    op.create_table(
        "exchange_releases",
        sa.Column("exchange_id", HASH, nullable=False, comment="released once"),
        sa.Column("replacement_item_id", HASH, nullable=False),
        sa.Column("instant", sa.Boolean(), nullable=False),
        *_position(),
        _pk("exchange_releases", "exchange_id"),
    )
    op.create_table(
        "exchange_collateral_payouts",
        sa.Column("exchange_id", HASH, nullable=False, comment="a collateral is paid out once"),
        sa.Column("merchant", ADDRESS, nullable=False),
        sa.Column("token", ADDRESS, nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("original_shipped", sa.Boolean(), nullable=False),
        *_position(),
        _pk("exchange_collateral_payouts", "exchange_id"),
    )
    op.create_table(
        "return_unit_mismatches",
        sa.Column("return_id", HASH, nullable=False),
        sa.Column("sold_item_id", HASH, nullable=False),
        sa.Column("scanned_item_id", HASH, nullable=False),
        sa.Column("scanned_merchant", ADDRESS, nullable=False, comment="zero address: not on the ledger"),
        sa.Column("actor", ADDRESS, nullable=False),
        sa.Column("biz_step", sa.SmallInteger(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        *_position(),
        _pk("return_unit_mismatches", "block_number", "log_index"),
    )
    for name, table, columns in _INDEXES:
        op.create_index(name, table, list(columns))


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    for table in (
        "return_unit_mismatches",
        "exchange_collateral_payouts",
        "exchange_releases",
        "exchange_payments",
        "exchanges",
        "list_prices",
        "exchange_terms",
    ):
        op.drop_table(table)
    with op.batch_alter_table("chain_pin") as batch:
        batch.drop_column("exchange_address")
