"""The scan batcher's queue (issue #23): acknowledged scans, their batches, and each item's sealed chain head.

- ``scan_batches``: one row per batch of one submitter, open -> full -> sealed -> anchored -> final (a reorg that drops
  the anchor takes it back to sealed); at most one open batch per submitter (a partial unique index).
- ``queued_scans``: every scan ``POST /v1/scans`` acknowledged, keyed by its batch and place in it.
- ``scan_heads``: each item's last sealed batched scan (seq, leaf hash), from which the next is numbered.

Owned by the API and ledger-batcher, never by the indexer. Self-contained on purpose (no import of tables.py).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASH = sa.String(66)
ADDRESS = sa.String(42)
EVENT_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scan_batches",
        sa.Column("id", EVENT_KEY, primary_key=True, autoincrement=True, comment="the batch number receipts name"),
        sa.Column("submitter", ADDRESS, nullable=False, comment="the account that anchors it"),
        sa.Column("state", sa.String(12), nullable=False, comment="open | full | sealed | anchored | final"),
        sa.Column("scan_count", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False, comment="wall-clock unix ms of its first scan"),
        sa.Column("sealed_at", sa.BigInteger, nullable=True, comment="wall-clock unix ms"),
        sa.Column("root", HASH, nullable=True),
        sa.Column("document_digest", HASH, nullable=True, comment="sha2-256 of the document, as anchored"),
        sa.Column("document", sa.LargeBinary, nullable=True, comment="the sealed document's canonical bytes"),
        sa.Column("tx_hash", HASH, nullable=True, comment="the anchor transaction"),
        sa.Column("anchor_block", sa.BigInteger, nullable=True),
        sa.Column("anchor_block_hash", HASH, nullable=True),
        sa.Column("anchored_at", sa.BigInteger, nullable=True, comment="wall-clock unix ms the anchor was seen mined"),
        sa.Column("attempts", sa.Integer, nullable=False, comment="anchor sends tried"),
        sa.Column("problem", sa.Text, nullable=True, comment="why the last send failed"),
        comment="scan batches, from acknowledged to anchored (the API and ledger-batcher)",
    )
    op.create_index(
        "ux_scan_batches_open",
        "scan_batches",
        ["submitter"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_scan_batches_state", "scan_batches", ["state", "id"])
    op.create_table(
        "queued_scans",
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False, comment="its place in the batch: the document's event index"),
        sa.Column("item", sa.String(256), nullable=False, comment="the item's GS1 URI"),
        sa.Column("biz_step", sa.SmallInteger, nullable=False),
        sa.Column("disposition", sa.SmallInteger, nullable=False),
        sa.Column("read_point", sa.String(32), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False, comment="the scanner's clock, unix seconds"),
        sa.Column("document", HASH, nullable=False),
        sa.Column("biz_transaction", HASH, nullable=False),
        sa.Column("key_id", sa.Integer, nullable=False, comment="the API key that sent it"),
        sa.Column("accepted_at", sa.BigInteger, nullable=False, comment="wall-clock unix ms of its acknowledgement"),
        sa.PrimaryKeyConstraint("batch_id", "position"),
        comment="acknowledged scans, each in the batch its receipt named",
    )
    op.create_table(
        "scan_heads",
        sa.Column("item_id", HASH, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, comment="the item's last sealed batched scan"),
        sa.Column("leaf_hash", HASH, nullable=False),
        comment="each item's chain of batched scans as ledger-batcher sealed it",
    )


def downgrade() -> None:
    op.drop_table("scan_heads")
    op.drop_table("queued_scans")
    op.drop_index("ix_scan_batches_state", table_name="scan_batches")
    op.drop_index("ux_scan_batches_open", table_name="scan_batches")
    op.drop_table("scan_batches")
