"""node_faults: incomplete node answers the indexer caught (a log left out of an ``eth_getLogs`` answer).

One row per problem found by the completeness checks (a header's logsBloom,
the contract's ``itemOf`` count and head, a hash-chain break, a receipts
proof), with the block range, the item where one was named, and whether a
re-fetched answer repaired it. The rows record the node's behaviour, not the
chain's: a reorg does not delete them and two indexes of one chain may hold
different ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_faults",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False, comment="the check: bloom, reconcile, chain_break or proof"),
        sa.Column("from_block", sa.BigInteger, nullable=False),
        sa.Column("to_block", sa.BigInteger, nullable=False),
        sa.Column("item_id", sa.String(66), nullable=True, comment="the item the check named, if any"),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column(
            "repaired",
            sa.Boolean,
            nullable=False,
            comment="a re-fetched answer was complete and was indexed instead",
        ),
        sa.Column("detected_at", sa.BigInteger, nullable=False, comment="wall-clock unix seconds"),
        comment="incomplete node answers the indexer caught; a record of the node's behaviour, kept through reorgs",
    )
    op.create_index("ix_node_faults_block", "node_faults", ["from_block"])


def downgrade() -> None:
    op.drop_index("ix_node_faults_block", table_name="node_faults")
    op.drop_table("node_faults")
