"""Batched scans (issue #23): BatchAnchor pinned beside the ledger and the escrow, its anchors and their scans.

- ``chain_pin.batch_anchor_address``: the BatchAnchor whose logs the index holds (null for a deployment made
  before BatchAnchor existed: its batches are not indexed).
- ``batch_anchors``: one row per BatchAnchored log, in state ``pending_document`` until the indexer has the
  batch document, then ``applied`` or ``refused`` (with the reason).
- ``batched_scans``: every scan of an applied batch, keyed by the item's chain of batched scans (item, seq),
  with its leaf hash and its place in the batch (the anchor's position and the leaf index).

Self-contained on purpose (no import of tables.py), like 0004.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)


def _position() -> list[sa.Column[object]]:
    return [
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("tx_index", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("chain_pin") as batch:
        batch.add_column(
            sa.Column("batch_anchor_address", ADDRESS, nullable=True, comment="null: a deployment without BatchAnchor")
        )
    op.create_table(
        "batch_anchors",
        sa.Column("root", HASH, nullable=False),
        sa.Column("submitter", ADDRESS, nullable=False),
        sa.Column("document_digest", HASH, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("anchored_at", sa.BigInteger, nullable=False, comment="block timestamp"),
        sa.Column("state", sa.String(16), nullable=False, comment="pending_document | applied | refused"),
        sa.Column(
            "problem",
            sa.Text,
            nullable=True,
            comment="why a refused batch was refused, or why a document is pending",
        ),
        sa.Column("attempts", sa.Integer, nullable=False, comment="document fetches tried"),
        *_position(),
        sa.PrimaryKeyConstraint("block_number", "log_index"),
    )
    op.create_index("ix_batch_anchors_state", "batch_anchors", ["state"])
    op.create_index("ix_batch_anchors_submitter_root", "batch_anchors", ["submitter", "root"])
    op.create_table(
        "batched_scans",
        sa.Column("item_id", HASH, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, comment="the item's chain of batched scans"),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column(
            "leaf_hash", HASH, nullable=False, comment="the scan's Merkle leaf, also its hash in the item's chain"
        ),
        sa.Column("biz_step", sa.SmallInteger, nullable=False),
        sa.Column("disposition", sa.SmallInteger, nullable=False),
        sa.Column("read_point", sa.String(32), nullable=False),
        sa.Column("document", HASH, nullable=False),
        sa.Column("biz_transaction", HASH, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False, comment="the scanner's clock, unix seconds"),
        sa.Column("submitter", ADDRESS, nullable=False),
        sa.Column("leaf_index", sa.Integer, nullable=False, comment="the scan's place in its batch document's events"),
        sa.Column("block_number", sa.BigInteger, nullable=False, comment="the anchor's position: the batch id"),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "seq"),
    )
    op.create_index("ix_batched_scans_batch", "batched_scans", ["block_number", "log_index"])


def downgrade() -> None:
    op.drop_index("ix_batched_scans_batch", table_name="batched_scans")
    op.drop_table("batched_scans")
    op.drop_index("ix_batch_anchors_submitter_root", table_name="batch_anchors")
    op.drop_index("ix_batch_anchors_state", table_name="batch_anchors")
    op.drop_table("batch_anchors")
    with op.batch_alter_table("chain_pin") as batch:
        batch.drop_column("batch_anchor_address")
