"""item_events.block_hash: the hash of each event's block, so an auditor can check it is still canonical;
an index on items.gtin, so a consumer's check of a GS1 Digital Link (GTIN + serial) finds the item at once.

Rows indexed before this revision get the hash of their block from ``blocks``
where that header is still stored (blocks above finality); older rows keep
NULL (their block is below finality: an auditor is told it was not checked).
The indexer fills the column from each log's ``blockHash`` from now on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)


def upgrade() -> None:
    op.add_column(
        "item_events",
        sa.Column(
            "block_hash",
            HASH,
            nullable=True,
            comment="hash of the log's block (auditors check it is still canonical); NULL only for rows "
            "indexed before revision 0003 whose block header was no longer stored",
        ),
    )
    op.execute(
        "UPDATE item_events SET block_hash = "
        "(SELECT blocks.hash FROM blocks WHERE blocks.number = item_events.block_number) "
        "WHERE block_hash IS NULL"
    )
    op.create_index("ix_items_gtin", "items", ["gtin"])


def downgrade() -> None:
    op.drop_index("ix_items_gtin", table_name="items")
    with op.batch_alter_table("item_events") as batch:
        batch.drop_column("block_hash")
