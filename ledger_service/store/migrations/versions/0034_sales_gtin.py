"""The sold item's GTIN on its sale row (issue #21): ``sales.gtin``.

The analytics' refresh counted each new sale by its GTIN, looking every sold item up in ``items`` (a random
lookup per sale, most of the refresh's time after a backfill). The indexer has the item's state in hand when it
writes a sale (the contract records the sale's item event in the same transaction), so it writes the GTIN on the
row and the refresh reads the sales alone. Existing rows get their item's GTIN here, once; a sale whose item has
no row keeps NULL (the refresh's join left those out, and still does). Self-contained on purpose (no import of
tables.py).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | Sequence[str] | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sales",
        sa.Column("gtin", sa.BigInteger(), nullable=True, comment="the sold item's GTIN, written at ingest (0034)"),
    )
    items = sa.table("items", sa.column("item_id"), sa.column("gtin"))
    sales = sa.table("sales", sa.column("item_id"), sa.column("gtin"))
    gtin = sa.select(items.c.gtin).where(items.c.item_id == sales.c.item_id).scalar_subquery()
    op.execute(sales.update().values(gtin=gtin))


def downgrade() -> None:
    with op.batch_alter_table("sales") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("gtin")
